"""Engines under faults: an evaluation past its deadline is stopped, an evaluator that crashes
is replaced, an OPA that restarted empty, serves another bundle or hangs never yields an
unchecked answer (real rego-cpp processes, a real OPA)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from policies.engines.base import EvaluationTimeout, EvaluatorCrashed, StaleBundle
from policies.engines.embedded import EmbeddedEngine
from policies.engines.opa import OpaEngine
from tests.fixtures.opa import OpaProcess
from tests.policies.samples import sample, to_input, with_annotations

COMPLIANT = to_input(sample("01-compliant-deployment.yaml"))
DENIED = to_input(sample("02-missing-fields-deployment.yaml"))


def _wait(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_evaluation_past_its_deadline_is_stopped_and_the_evaluator_replaced(
    policy_copy: Path,
) -> None:
    slow = policy_copy / "modelgate" / "admission" / "slow.rego"
    slow.write_text(
        "package modelgate.admission\n\n"
        'deny contains "slow" if {\n'
        '\tinput.workload.name == "slow"\n'
        "\tcount([x | some x in numbers.range(1, 200000000)]) > 0\n"
        "}\n"
    )
    engine = EmbeddedEngine(policy_copy, timeout=1.0, evaluators=1)
    try:
        assert engine.ready(), engine.last_error
        hostile = {**COMPLIANT, "workload": {**COMPLIANT["workload"], "name": "slow"}}
        before = engine.evaluator_pids
        started = time.monotonic()
        with pytest.raises(EvaluationTimeout):
            engine.evaluate(hostile)
        assert time.monotonic() - started < 1.0 + 2.0  # stopped, not left running
        _wait(lambda: engine.evaluator_pids and engine.evaluator_pids != before)
        assert engine.evaluate(COMPLIANT, deadline=time.monotonic() + 30).allowed
        assert engine.evaluator_restarts == 1
    finally:
        engine.close()


def test_crashing_evaluator_is_an_error_and_the_next_evaluation_is_answered(
    policy_copy: Path,
) -> None:
    # with the size limit raised, a 27 KB model-card makes rego-cpp crash (SIGSEGV)
    data = policy_copy / "modelgate" / "config" / "data.yaml"
    data.write_text(data.read_text().replace("max_value_bytes: 4096", "max_value_bytes: 100000"))
    engine = EmbeddedEngine(policy_copy, timeout=10.0, evaluators=1)
    try:
        crasher = to_input(
            with_annotations(
                sample("01-compliant-deployment.yaml"), model_card="https://" + "a" * 27_000
            )
        )
        with pytest.raises(EvaluatorCrashed, match="SIGSEGV"):
            engine.evaluate(crasher)
        assert engine.evaluate(COMPLIANT, deadline=time.monotonic() + 30).allowed
        assert not engine.evaluate(DENIED, deadline=time.monotonic() + 30).allowed
    finally:
        engine.close()


@pytest.fixture
def own_opa() -> Iterator[OpaProcess]:
    server = OpaProcess().start()
    yield server
    server.close()


def test_opa_serving_another_bundle_digest_is_not_trusted(
    own_opa: OpaProcess, policy_copy: Path
) -> None:
    engine = OpaEngine(policy_copy, own_opa.url, timeout=5)
    try:
        assert engine.ready()
        requests.put(f"{own_opa.url}/v1/data/modelgate/bundle", json={"digest": "other"}, timeout=5)
        assert engine._repushing.acquire(blocking=False)  # as if another thread were pushing
        with pytest.raises(StaleBundle, match="does not serve the current policy bundle"):
            engine.evaluate(DENIED)
        engine._repushing.release()
        # released: the next caller pushes again and gets a real answer
        assert not engine.evaluate(DENIED).allowed
    finally:
        engine.close()


def test_opa_restarted_empty_is_pushed_again_and_never_allows_unchecked(
    own_opa: OpaProcess, policy_copy: Path
) -> None:
    engine = OpaEngine(policy_copy, own_opa.url, timeout=5)
    try:
        assert not engine.evaluate(DENIED).allowed
        own_opa.kill()
        own_opa.start()  # empty
        assert not engine.ready()  # the marker is gone: not ready, pushed in the background
        _wait(engine.ready)
        assert not engine.evaluate(DENIED).allowed
        assert engine.evaluate(COMPLIANT).allowed
    finally:
        engine.close()


def test_hung_opa_is_a_timeout_within_the_deadline_and_not_ready_quickly(
    own_opa: OpaProcess, policy_copy: Path
) -> None:
    engine = OpaEngine(policy_copy, own_opa.url, timeout=1.0)
    try:
        assert engine.evaluate(COMPLIANT).allowed
        own_opa.pause()
        started = time.monotonic()
        with pytest.raises(EvaluationTimeout):
            engine.evaluate(COMPLIANT)
        assert time.monotonic() - started < 1.0 + 0.5
        started = time.monotonic()
        assert not engine.ready()
        assert time.monotonic() - started < 1.0
        own_opa.resume()
        _wait(engine.ready)
        assert engine.evaluate(COMPLIANT).allowed
    finally:
        engine.close()
