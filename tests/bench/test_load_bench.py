"""The webhook under load, the way the API server feels it, side by side with a bare OPA.

``make bench`` runs it. It starts the real ``modelgate serve`` (the chart's defaults: OPA engine
on its own OPA process, 2 workers x 8 threads, TLS, recording into SQLite with a spool) and a
bare ``opa run --server`` loaded with the same ``policies/`` bundle, and drives both with ``hey``
(``make tools`` builds it) using the same input document modelgate builds for the review. It
prints, for one run on this machine:

* ``/validate`` p99 / bare OPA p99 at 1 and at 16 connections (goal <= 1.5);
* ``/validate`` throughput / ``GET /healthz`` throughput at 16 connections (goal >= 0.6);
* recorded / dry-run ``/validate`` time per request at 16 connections (goal <= 1.1);
* the connection-stall check: 64 keep-alive connections, 0 requests unanswered (and 256 on
  ``/healthz``);
* the embedded (rego-cpp) engine's ``/validate`` at 1 and 16 connections, for comparison.

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
from typing import Any

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


@dataclass
class Bench:
    opa_url: str
    serve: Serve
    embedded: Serve
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

    servers: list[Serve] = []
    for engine in ("opa", "embedded"):
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
        servers.append(serve)
    try:
        yield Bench(bare.url, servers[0], servers[1], reviews, dry, opa_input)
    finally:
        for serve in servers:
            serve.stop()
        for opa in (bare, sidecar):
            opa.close()


def test_webhook_load_side_by_side_with_bare_opa(bench: Bench, benchmark: BenchmarkFixture) -> None:
    base = bench.serve.base
    opa_query = f"{bench.opa_url}/v1/data/modelgate/admission"
    runs: dict[str, Run] = {}

    def measure() -> None:
        for n in (1, 16):
            runs[f"opa{n}"] = hey(
                "bare OPA: POST /v1/data/modelgate/admission", opa_query, n, bench.opa_input
            )
            runs[f"validate{n}"] = hey(
                "modelgate: POST /validate (recorded)", base + "/validate", n, bench.review
            )
        runs["healthz16"] = hey("modelgate: GET /healthz", base + "/healthz", 16)
        runs["dry16"] = hey(
            "modelgate: POST /validate (dry run)", base + "/validate", 16, bench.dry_review
        )
        runs["stall64"] = hey(
            "modelgate: POST /validate, stall check", base + "/validate", 64, bench.review
        )
        runs["stall256"] = hey("modelgate: GET /healthz, 256 connections", base + "/healthz", 256)
        for n in (1, 16):
            runs[f"embedded{n}"] = hey(
                "modelgate, embedded engine: POST /validate", bench.embedded.base + "/validate", n,
                bench.review,
            )  # fmt: skip

    # warm up first (what a replica in service has behind it: imports done, statements
    # compiled and cached, connections open); a p99 of a few hundred requests would
    # otherwise be the cold start's
    for url, body in (
        (opa_query, bench.opa_input),
        (base + "/validate", bench.review),
        (base + "/validate", bench.dry_review),
        (bench.embedded.base + "/validate", bench.review),
    ):
        hey("warm-up", url, 4, body, duration=WARM_UP)
    benchmark.pedantic(measure, rounds=1, iterations=1)  # type: ignore[no-untyped-call]

    ratios: dict[str, Any] = {
        "p99 /validate / bare OPA, 1 connection (goal <= 1.5)": runs["validate1"].p99
        / runs["opa1"].p99,
        "p99 /validate / bare OPA, 16 connections (goal <= 1.5)": runs["validate16"].p99
        / runs["opa16"].p99,
        "throughput /validate / GET /healthz, 16 connections (goal >= 0.6)": runs["validate16"].rps
        / runs["healthz16"].rps,
        "time per request recorded / dry run, 16 connections (goal <= 1.1)": runs["dry16"].rps
        / runs["validate16"].rps,
    }
    lines = [
        "",
        "| load | connections | req/s | p50 | p99 | unanswered |",
        "|---|---|---|---|---|---|",
        *(r.row() for r in runs.values()),
        "",
        *(f"{name}: {value:.2f}" for name, value in ratios.items()),
        f"connection-stall check (64 keep-alive connections): {runs['stall64'].errors} unanswered",
        f"256 keep-alive connections: {runs['stall256'].errors} unanswered",
    ]
    print("\n".join(lines))
    benchmark.extra_info.update({k: round(v, 3) for k, v in ratios.items()})
    benchmark.extra_info["runs"] = {k: vars(r) for k, r in runs.items()}
    for key, run in runs.items():
        assert set(run.statuses) == {200}, (key, run.statuses)
    assert runs["stall64"].errors == 0 and runs["stall256"].errors == 0
