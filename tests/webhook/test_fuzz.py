"""Hostile metadata against a real ``modelgate serve`` (default limits; the embedded engine, and
OPA's evaluator in-process): every review is answered within the deadline, no worker dies, and
the next compliant review is admitted. The values are generated (seeded, so a failure can be
replayed)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.webhook.reviews import COMPLIANT, P, deployment, review
from tests.webhook.serving import Serve, clean_env, modelgate

POLICY_TIMEOUT = 2.0
#: the answer must come within the policy timeout; the margin is for a loaded 2-core machine
ANSWER_WITHIN = POLICY_TIMEOUT + 3.0
FIELDS = [
    "model-name", "model-version", "owner", "training-date", "training-data",
    "compliance-status", "risk-tier", "certifications", "model-card", "metrics",
    "training-run", "source", "exempt-reason",
]  # fmt: skip
ODD = ["\u0000", "\\", '"', "\u202e", "\ud83d\ude00", "\t", "\n", "\u00e4", "\\u0041", "\x7f", ","]


def _text(rng: random.Random, size: int, commas: bool = True) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789:/._-" + ("," if commas else "")
    return "".join(rng.choice(alphabet) for _ in range(size))


def _hostile(rng: random.Random) -> dict[str, str]:
    kind = rng.choice(
        ["huge", "no-commas", "nested", "nested-object", "many-certs", "odd", "exponents",
         "many-keys", "surrogates"]
    )  # fmt: skip
    field = rng.choice(FIELDS)
    if kind == "huge":
        return {P + field: _text(rng, rng.randint(4_000, 60_000))}
    if kind == "no-commas":
        value = "s3://" + rng.choice(['a"', "a\\", "a"]) * rng.randint(13_000, 15_000)
        return {P + rng.choice(["training-data", "model-card"]): value}
    if kind == "nested":
        depth = rng.randint(1_000, 4_600)
        return {P + rng.choice(["certifications", "metrics"]): "[" * depth + "]" * depth}
    if kind == "nested-object":
        depth = rng.randint(17, 2_000)
        return {P + "metrics": '{"a":' * depth + "1" + "}" * depth}
    if kind == "many-certs":
        n = rng.choice([101, 150, 1_000, 3_000, 5_000])
        certs = [{"name": f"c{i}", "expires": "2020-01-01"} for i in range(n)]
        return {P + "certifications": json.dumps(certs), P + "risk-tier": "high"}
    if kind == "odd":
        return {P + f: "".join(rng.choice(ODD) for _ in range(rng.randint(1, 300))) for f in FIELDS}
    if kind == "exponents":
        return {P + "metrics": '{"a": 1e999, "b": ' + "9" * 5_000 + "}"}
    if kind == "many-keys":
        return {P + f"extra-{i}": "x" * 40 for i in range(rng.randint(500, 2_000))}
    return {P + field: "\ud800" + _text(rng, 50)}  # a lone surrogate (escaped in JSON)


@pytest.fixture(scope="module", params=["embedded", "opa-inprocess"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    workdir = tmp_path_factory.mktemp("fuzz")
    env = clean_env(
        MODELGATE_DATABASE_URL=f"sqlite:///{workdir / 'inventory.db'}",
        MODELGATE_POLICY_TIMEOUT_SECONDS=str(POLICY_TIMEOUT),
        MODELGATE_POLICY_ENGINE=request.param,
    )
    subprocess.run(modelgate("db", "upgrade"), env=env, cwd=workdir, check=True)
    serve = Serve(workdir, env, ["--workers", "2", "--threads", "4"]).start()
    serve.wait_ready(path="/readyz")
    yield serve
    serve.stop()


def _post(server: Serve, body: dict[str, Any]) -> tuple[float, Any]:
    data = json.dumps(body, ensure_ascii=True)  # lone surrogates travel as \\ud800 escapes
    started = time.monotonic()
    assert server.certs is not None
    resp = requests.post(
        server.base + "/validate",
        data=data.encode(),
        headers={"Content-Type": "application/json"},
        verify=str(server.certs.ca_cert),
        timeout=30,
    )
    return time.monotonic() - started, resp


@pytest.mark.parametrize("seed", range(6))
def test_hostile_metadata_is_answered_in_time_and_never_kills_a_worker(
    server: Serve, seed: int
) -> None:
    rng = random.Random(seed)
    workers = server.workers()
    assert len(workers) == 2
    for n in range(8):
        annotations = {**COMPLIANT, **_hostile(rng)}
        where = rng.choice(["object", "template", "labels"])
        obj = deployment(f"fuzz-{seed}-{n}", annotations=annotations if where == "object" else {})
        if where == "template":
            obj["spec"]["template"].setdefault("metadata", {})["annotations"] = annotations
        elif where == "labels":
            obj["metadata"].setdefault("labels", {}).update(
                {k: v for k, v in annotations.items() if len(v) < 64_000}
            )
        took, resp = _post(server, review(obj, uid=f"fuzz-{seed}-{n}"))
        assert resp.status_code in (200, 400, 413), resp.text[:300]
        assert took < ANSWER_WITHIN, f"seed {seed} case {n}: {took:.1f}s"
        if resp.status_code == 200:
            answer = resp.json()["response"]
            assert answer["uid"] == f"fuzz-{seed}-{n}"
            assert isinstance(answer["allowed"], bool)
        # the next compliant review is admitted, by a live worker
        took, ok = _post(server, review(deployment("after", annotations=COMPLIANT), uid="after"))
        assert ok.status_code == 200 and ok.json()["response"]["allowed"] is True, ok.text[:300]
        assert took < ANSWER_WITHIN
    assert server.workers() == workers  # no worker died (and none was replaced)
