"""The webhook under load, the way the API server feels it, side by side with a bare OPA.

``make bench`` runs it. It starts the real ``modelgate serve`` once per engine (the chart's
settings: 2 workers x 8 threads, TLS, recording into SQLite with a spool; ``opa-inprocess``,
``opa`` on its own OPA process, and ``embedded``) and a bare ``opa run --server`` loaded with the
same ``policies/`` bundle, and drives them with ``hey`` (``make tools`` builds it) using the same
input document modelgate builds for the review. It prints, for one run on this machine and for
each of the two OPA engines:

* ``/validate`` p99 / bare OPA p99 at 1 and at 16 connections (goal <= 1.5);
* ``/validate`` throughput / ``GET /healthz`` throughput at 16 connections (goal >= 0.6);
* recorded / dry-run ``/validate`` time per request at 16 connections (goal <= 1.1);

then the connection-stall check on the first engine (64 keep-alive connections, 0 requests
unanswered, and 256 on ``/healthz``) and the embedded (rego-cpp) engine's ``/validate`` at 1 and
16 connections, for comparison.

Each server is warmed up first (2 s of load per endpoint, not measured). The figures are
information; the only assertions are that every request got a real answer.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from modelgate.policy_input import build_input
from modelgate.workload import extract_workload
from policies import BUNDLE_DIR
from policies.bundle import load_bundle
from tests.fixtures.opa import OpaProcess
from tests.fixtures.tools import tool
from tests.webhook.reviews import COMPLIANT, deployment, review
from tests.webhook.serving import Serve, clean_env, modelgate

pytestmark = pytest.mark.benchmark

DURATION = "5s"
#: load each server gets before it is measured
WARM_UP = "2s"


@dataclass
class Run:
    name: str
    connections: int
    rps: float
    p50: float
    p99: float
    statuses: dict[int, int]
    errors: int

    def row(self) -> str:
        return (
            f"| {self.name} | {self.connections} | {self.rps:,.0f} | {self.p50 * 1000:.1f} ms "
            f"| {self.p99 * 1000:.1f} ms | {self.errors} |"
        )


def hey(
    name: str, url: str, connections: int, body: Path | None = None, duration: str = DURATION
) -> Run:
    args = [tool("hey"), "-z", duration, "-c", str(connections), "-t", "20"]
    if body is not None:
        args += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=120).stdout

    def seconds(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else float("nan")

    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors_part = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors_part))
    return Run(
        name,
        connections,
        seconds(r"Requests/sec:\s+([\d.]+)"),
        seconds(r"50%+ in ([\d.]+) secs"),
        seconds(r"99%+ in ([\d.]+) secs"),
        statuses,
        errors,
    )


#: the engines measured side by side: OPA's evaluator in the webhook's process, OPA as a
#: sidecar server, rego-cpp (its figures for comparison only)
ENGINES = ("opa-inprocess", "opa", "embedded")
#: the engines whose ratios are printed (the hot-path candidates)
MEASURED = ("opa-inprocess", "opa")


@dataclass
class Bench:
    opa_url: str
    servers: dict[str, Serve]
    review: Path
    dry_review: Path
    opa_input: Path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    workdir = tmp_path_factory.mktemp("load")
    bundle = load_bundle(BUNDLE_DIR)
    marker = workdir / "marker.json"  # what the webhook pushes along with the bundle
    marker.write_text(json.dumps({"modelgate": {"bundle": {"digest": bundle.digest}}}))
    bare = OpaProcess(str(BUNDLE_DIR), str(marker)).start()
    sidecar = OpaProcess().start()

    obj = deployment("fraud-detector", annotations=COMPLIANT)
    body = review(obj, uid="bench")
    reviews = workdir / "review.json"
    reviews.write_text(json.dumps(body))
    dry = workdir / "review-dry.json"
    dry.write_text(json.dumps(review(obj, uid="bench-dry", dry_run=True)))
    req = body["request"]
    policy_input = build_input(
        request=req,
        workload=extract_workload(req["object"], req.get("namespace")),
        mode="admission",
    )
    opa_input = workdir / "opa-input.json"
    opa_input.write_text(json.dumps({"input": policy_input}))

    servers: dict[str, Serve] = {}
    try:
        for engine in ENGINES:
            wd = workdir / engine
            wd.mkdir()
            env = clean_env(
                MODELGATE_DATABASE_URL=f"sqlite:///{wd / 'inventory.db'}",
                MODELGATE_SPOOL_DIR=str(wd / "spool"),
                MODELGATE_POLICY_ENGINE=engine,
                MODELGATE_OPA_URL=sidecar.url,
            )
            subprocess.run(modelgate("db", "upgrade"), env=env, cwd=wd, check=True)
            serve = Serve(wd, env, ["--workers", "2", "--threads", "8"]).start()
            serve.wait_ready(path="/readyz")
            servers[engine] = serve
        yield Bench(bare.url, servers, reviews, dry, opa_input)
    finally:
        for serve in servers.values():
            serve.stop()
        for opa in (bare, sidecar):
            opa.close()


def ratios_of(runs: dict[str, Run], engine: str) -> dict[str, float]:
    """The issue's three ratios for ``engine``'s server (bare OPA measured in the same run)."""
    return {
        f"{engine}: p99 /validate / bare OPA, 1 connection (goal <= 1.5)": runs[
            f"{engine} validate1"
        ].p99
        / runs["opa1"].p99,
        f"{engine}: p99 /validate / bare OPA, 16 connections (goal <= 1.5)": runs[
            f"{engine} validate16"
        ].p99
        / runs["opa16"].p99,
        f"{engine}: throughput /validate / GET /healthz, 16 connections (goal >= 0.6)": runs[
            f"{engine} validate16"
        ].rps
        / runs[f"{engine} healthz16"].rps,
        f"{engine}: time per request recorded / dry run, 16 connections (goal <= 1.1)": runs[
            f"{engine} dry16"
        ].rps
        / runs[f"{engine} validate16"].rps,
    }


def test_webhook_load_side_by_side_with_bare_opa(bench: Bench, benchmark: BenchmarkFixture) -> None:
    opa_query = f"{bench.opa_url}/v1/data/modelgate/admission"
    default = bench.servers[MEASURED[0]].base
    runs: dict[str, Run] = {}

    def measure() -> None:
        for n in (1, 16):
            runs[f"opa{n}"] = hey(
                "bare OPA: POST /v1/data/modelgate/admission", opa_query, n, bench.opa_input
            )
            for engine in MEASURED:
                runs[f"{engine} validate{n}"] = hey(
                    f"modelgate ({engine}): POST /validate (recorded)",
                    bench.servers[engine].base + "/validate",
                    n,
                    bench.review,
                )
        for engine in MEASURED:
            base = bench.servers[engine].base
            runs[f"{engine} healthz16"] = hey(
                f"modelgate ({engine}): GET /healthz", base + "/healthz", 16
            )
            runs[f"{engine} dry16"] = hey(
                f"modelgate ({engine}): POST /validate (dry run)",
                base + "/validate",
                16,
                bench.dry_review,
            )
        runs["stall64"] = hey(
            f"modelgate ({MEASURED[0]}): POST /validate, stall check",
            default + "/validate",
            64,
            bench.review,
        )
        runs["stall256"] = hey(
            f"modelgate ({MEASURED[0]}): GET /healthz, 256 connections", default + "/healthz", 256
        )
        for n in (1, 16):
            runs[f"embedded{n}"] = hey(
                "modelgate (embedded): POST /validate",
                bench.servers["embedded"].base + "/validate",
                n,
                bench.review,
            )

    # warm up first (what a replica in service has behind it: imports done, statements
    # compiled and cached, connections open); a p99 of a few hundred requests would
    # otherwise be the cold start's
    warm_up = [(opa_query, bench.opa_input)]
    for serve in bench.servers.values():
        warm_up += [
            (serve.base + "/validate", bench.review),
            (serve.base + "/validate", bench.dry_review),
        ]
    for url, body in warm_up:
        hey("warm-up", url, 4, body, duration=WARM_UP)
    benchmark.pedantic(measure, rounds=1, iterations=1)  # type: ignore[no-untyped-call]

    ratios: dict[str, float] = {}
    for engine in MEASURED:
        ratios.update(ratios_of(runs, engine))
    lines = [
        "",
        "| load | connections | req/s | p50 | p99 | unanswered |",
        "|---|---|---|---|---|---|",
        *(r.row() for r in runs.values()),
        "",
        *(f"- {name}: {value:.2f}" for name, value in ratios.items()),
        f"- connection-stall check (64 keep-alive connections): {runs['stall64'].errors} "
        "unanswered",
        f"- 256 keep-alive connections: {runs['stall256'].errors} unanswered",
    ]
    print("\n".join(lines))
    benchmark.extra_info.update({k: round(v, 3) for k, v in ratios.items()})
    benchmark.extra_info["runs"] = {k: vars(r) for k, r in runs.items()}
    for key, run in runs.items():
        assert set(run.statuses) == {200}, (key, run.statuses)
    assert runs["stall64"].errors == 0 and runs["stall256"].errors == 0
