"""The opa-inprocess engine: OPA's Go evaluator loaded into this process (the real
``libmodelgate_opa.so`` that ``make tools`` builds). Its decisions are compared with the OPA
server's in test_parity; here: deadlines, crashes of the bundle, reloads, threads, a fork."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from modelgate.engine import engine_for
from modelgate.settings import Settings
from policies.engines import PolicyEngine, create_engine
from policies.engines.base import BundleError, EvaluationError, EvaluationTimeout
from policies.engines.inprocess import LIBRARY_ENV, InProcessOpaEngine, library_path
from tests.policies.samples import POLICY_DIR, require_field, sample, to_input, with_annotations

COMPLIANT = to_input(sample("01-compliant-deployment.yaml"))
DENIED = to_input(sample("02-missing-fields-deployment.yaml"))

#: a rule that runs for minutes, only for a workload named "slow"
SLOW_RULE = (
    "package modelgate.admission\n\n"
    'deny contains "slow" if {\n'
    '\tinput.workload.name == "slow"\n'
    "\tcount([x | some x in numbers.range(1, 2000000000)]) > 0\n"
    "}\n"
)


@pytest.fixture
def engine(inprocess_engine: InProcessOpaEngine) -> InProcessOpaEngine:
    return inprocess_engine


def _cpu_seconds() -> float:
    return sum(os.times()[:2])


def test_engine_satisfies_the_protocol_and_names_its_opa(engine: InProcessOpaEngine) -> None:
    assert isinstance(engine, PolicyEngine)
    assert engine.name == "opa-inprocess"
    assert len(engine.bundle_digest) == 64
    # the library is built from the OPA release the opa engine's server runs
    assert engine.opa_version == "1.22.3"
    assert library_path().name == "libmodelgate_opa.so"


def test_compliant_allowed_and_missing_fields_denied_naming_them(
    engine: InProcessOpaEngine,
) -> None:
    assert engine.evaluate(COMPLIANT).allowed
    result = engine.evaluate(DENIED)
    assert not result.allowed
    assert any('"modelgate.dev/training-date"' in d for d in result.deny), result.deny


def test_settings_and_create_engine_build_it(tmp_path: Path) -> None:
    for built in (
        create_engine("opa-inprocess", POLICY_DIR),
        engine_for(Settings(policy_engine="opa-inprocess", policy_dir=POLICY_DIR)),
    ):
        try:
            assert isinstance(built, InProcessOpaEngine) and built.ready(), built.last_error
        finally:
            built.close()


def test_an_evaluation_past_its_deadline_is_cancelled_and_stops_using_cpu(
    policy_copy: Path,
) -> None:
    (policy_copy / "modelgate" / "admission" / "slow.rego").write_text(SLOW_RULE)
    engine = InProcessOpaEngine(policy_copy, timeout=1.0)
    try:
        assert engine.ready(), engine.last_error
        hostile = {**COMPLIANT, "workload": {**COMPLIANT["workload"], "name": "slow"}}
        started = time.monotonic()
        with pytest.raises(EvaluationTimeout, match="cancelled at its deadline"):
            engine.evaluate(hostile)
        assert time.monotonic() - started < 1.0 + 0.5
        # cancelled, not left running in the background: the process is idle again
        before = _cpu_seconds()
        time.sleep(1.0)
        assert _cpu_seconds() - before < 0.3
        assert engine.evaluate(COMPLIANT).allowed
    finally:
        engine.close()


def test_hostile_input_while_other_threads_evaluate_delays_none_of_them(
    policy_copy: Path,
) -> None:
    """Runaway evaluations do not hold a lock: compliant reviews on other threads are
    answered meanwhile, each in milliseconds."""
    (policy_copy / "modelgate" / "admission" / "slow.rego").write_text(SLOW_RULE)
    engine = InProcessOpaEngine(policy_copy, timeout=2.0)
    hostile = {**COMPLIANT, "workload": {**COMPLIANT["workload"], "name": "slow"}}
    timeouts: list[BaseException] = []

    def attack() -> None:
        try:
            engine.evaluate(hostile)
        except EvaluationTimeout as e:
            timeouts.append(e)

    attackers = [threading.Thread(target=attack) for _ in range(2)]
    try:
        for thread in attackers:
            thread.start()
        time.sleep(0.2)
        for _ in range(20):
            started = time.monotonic()
            assert engine.evaluate(COMPLIANT).allowed
            assert time.monotonic() - started < 1.0
        for thread in attackers:
            thread.join(timeout=10)
        assert len(timeouts) == 2
    finally:
        engine.close()


def test_concurrent_evaluations_match_serial_ones(engine: InProcessOpaEngine) -> None:
    inputs = [COMPLIANT, DENIED] * 20
    expected = [engine.evaluate(i) for i in inputs]
    results: dict[int, object] = {}

    def run(start: int) -> None:
        for n in range(start, len(inputs), 8):
            results[n] = engine.evaluate(inputs[n])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [results[n] for n in range(len(inputs))] == expected


def test_unserialisable_input_is_an_evaluation_error(engine: InProcessOpaEngine) -> None:
    with pytest.raises(EvaluationError, match="not JSON-serialisable"):
        engine.evaluate({"workload": object()})


def test_a_runtime_error_of_the_policy_is_an_evaluation_error(policy_copy: Path) -> None:
    (policy_copy / "modelgate" / "admission" / "conflict.rego").write_text(
        "package modelgate.admission\n\n"
        'conflict := 1 if input.workload.name == "conflict"\n'
        'conflict := 2 if input.workload.name == "conflict"\n'
    )
    engine = InProcessOpaEngine(policy_copy)
    try:
        assert engine.ready(), engine.last_error
        clash = {**COMPLIANT, "workload": {**COMPLIANT["workload"], "name": "conflict"}}
        with pytest.raises(EvaluationError, match="conflicting values"):
            engine.evaluate(clash)
        assert engine.evaluate(COMPLIANT).allowed
    finally:
        engine.close()


# -- loading and reloading ------------------------------------------------------------------


def _break(policy_dir: Path) -> None:
    rego = policy_dir / "modelgate" / "risk" / "risk.rego"
    rego.write_text(rego.read_text() + "\nbroken if {\n\tinput.x ==\n}\n")


def test_edited_data_takes_effect_on_reload(policy_copy: Path) -> None:
    engine = InProcessOpaEngine(policy_copy)
    try:
        before = engine.bundle_digest
        # (the compliant sample carries modelgate.dev/source: a sample without it)
        without = to_input(with_annotations(sample("01-compliant-deployment.yaml"), source=None))
        assert engine.evaluate(without).allowed
        require_field(policy_copy, "source")
        assert engine.reload_if_changed() is True
        assert engine.bundle_digest != before
        result = engine.evaluate(without)
        assert result.deny == (
            'missing required annotation "modelgate.dev/source": see the modelgate metadata '
            "contract",
        )
        assert result.bundle_digest == engine.bundle_digest
        # reloading twice more (older bundles released) keeps answering
        for field in ("intended-purpose", "limitations"):
            require_field(policy_copy, field)
            assert engine.reload_if_changed() is True
            assert len(engine.evaluate(without).deny) == 2 + (field == "limitations")
    finally:
        engine.close()


def test_broken_bundle_is_rejected_with_opas_message_and_last_good_keeps_serving(
    policy_copy: Path,
) -> None:
    engine = InProcessOpaEngine(policy_copy)
    try:
        good = engine.bundle_digest
        _break(policy_copy)
        with pytest.raises(BundleError, match=r"does not compile.*risk\.rego"):
            engine.reload_if_changed()
        assert engine.ready() and engine.bundle_digest == good
        assert not engine.evaluate(DENIED).allowed
    finally:
        engine.close()


def test_first_load_failure_leaves_engine_not_ready(policy_copy: Path) -> None:
    _break(policy_copy)
    engine = InProcessOpaEngine(policy_copy)
    assert not engine.ready()
    with pytest.raises(EvaluationError, match="no policy bundle loaded"):
        engine.evaluate(COMPLIANT)


def test_bundle_without_the_admission_package_is_rejected(policy_copy: Path) -> None:
    admission = policy_copy / "modelgate" / "admission" / "admission.rego"
    admission.write_text(admission.read_text().replace("package modelgate.admission", "package x"))
    engine = InProcessOpaEngine(policy_copy)
    assert not engine.ready()
    assert engine.last_error is not None and "does not answer its digest" in engine.last_error


def test_a_missing_library_leaves_the_engine_not_ready_with_the_fix(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(BundleError, match="no such file"):
        library_path()
    # the library this process already loaded serves on; a process that has none is not ready
    monkeypatch.setattr("policies.engines.inprocess._loaded", None)
    engine = InProcessOpaEngine(policy_copy)
    assert not engine.ready()
    assert engine.last_error is not None and "missing.so" in engine.last_error
    with pytest.raises(EvaluationError, match="no policy bundle loaded"):
        engine.evaluate(COMPLIANT)


def test_a_forked_child_refuses_the_library_instead_of_hanging(
    engine: InProcessOpaEngine,
) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what evaluating gives, never return into pytest
        code = 1
        try:
            engine.evaluate(COMPLIANT)
        except EvaluationError as e:
            os.write(write, str(e).encode()[:500])
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    message = os.read(read, 1000).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0, message
    assert "loaded before this process was forked" in message
    assert engine.evaluate(COMPLIANT).allowed  # the parent is unaffected


def test_input_nested_past_the_decoders_depth_is_an_error_not_a_crash(
    engine: InProcessOpaEngine,
) -> None:
    """Below the size limits (which keep such input out of evaluation) the library itself
    refuses JSON nested deeper than Go's decoder allows, instead of overflowing a stack."""
    prepared = engine._prepared
    assert prepared is not None
    deep = b'{"workload": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(EvaluationError, match="exceeded max depth"):
        prepared.library.evaluate(prepared.handle, deep, 2.0)
    assert engine.evaluate(COMPLIANT).allowed
