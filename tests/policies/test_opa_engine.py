"""The opa engine against a real OPA server: push, decide, reload, reject, fail cleanly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modelgate.engine import engine_for
from modelgate.settings import Settings
from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    PolicyEngine,
)
from policies.engines.opa import OpaEngine
from tests.fixtures.tools import free_port
from tests.policies.samples import (
    POLICY_DIR,
    require_field,
    sample,
    to_input,
    with_annotations,
)


@pytest.fixture
def opa_engine(opa_server: str, policy_copy: Path) -> Iterator[OpaEngine]:
    engine = OpaEngine(policy_copy, opa_server, timeout=5)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


def _policy_ids(url: str) -> set[str]:
    body = requests.get(f"{url}/v1/policies", timeout=5).json()
    return {p["id"] for p in body["result"]}


def test_bundle_is_pushed_to_the_server(opa_engine: OpaEngine, opa_server: str) -> None:
    ids = _policy_ids(opa_server)
    assert "modelgate/modelgate/admission/admission.rego" in ids
    assert not any(i.endswith("_test.rego") for i in ids)
    config = requests.get(f"{opa_server}/v1/data/modelgate/config", timeout=5).json()["result"]
    assert config["certification_warning_days"] == 30


def test_compliant_sample_allowed(opa_engine: OpaEngine) -> None:
    result = opa_engine.evaluate(to_input(sample("01-compliant-deployment.yaml")))
    assert result.is_model and result.allowed
    assert result.bundle_digest == opa_engine.bundle_digest


def test_missing_fields_denied_with_every_key(opa_engine: OpaEngine) -> None:
    result = opa_engine.evaluate(to_input(sample("16-seldon-seldondeployment.yaml")))
    assert not result.allowed
    assert len(result.deny) == 6
    assert any('"modelgate.dev/training-data"' in m for m in result.deny)


def test_non_model_allowed_untouched(opa_engine: OpaEngine) -> None:
    result = opa_engine.evaluate(to_input(sample("04-nginx-deployment.yaml")))
    assert not result.is_model
    assert result.allowed and result.warn == () and result.violations == ()


def test_engine_satisfies_the_protocol(opa_engine: OpaEngine) -> None:
    assert isinstance(opa_engine, PolicyEngine)
    assert opa_engine.name == "opa"


def test_create_engine_builds_opa_from_settings(opa_server: str, policy_copy: Path) -> None:
    engine = engine_for(Settings(policy_engine="opa", opa_url=opa_server, policy_dir=policy_copy))
    try:
        assert isinstance(engine, OpaEngine)
        assert engine.ready()
        assert engine.evaluate(to_input(sample("01-compliant-deployment.yaml"))).allowed
    finally:
        engine.close()


def test_edited_policy_is_pushed_on_reload(opa_engine: OpaEngine, policy_copy: Path) -> None:
    without_source = to_input(with_annotations(sample("01-compliant-deployment.yaml"), source=None))
    assert opa_engine.evaluate(without_source).allowed
    require_field(policy_copy, "source")
    assert opa_engine.reload_if_changed() is True
    result = opa_engine.evaluate(without_source)
    assert any('"modelgate.dev/source"' in m for m in result.deny)
    assert opa_engine.reload_if_changed() is False


def test_broken_bundle_rejected_with_opa_message_and_last_good_serves(
    opa_engine: OpaEngine, policy_copy: Path
) -> None:
    good = opa_engine.bundle_digest
    # a compile error OPA reports (rego-cpp would not): an undefined function
    rego = policy_copy / "modelgate" / "risk" / "risk.rego"
    rego.write_text(rego.read_text() + "\nbroken if no_such_function(input.x)\n")
    with pytest.raises(BundleError, match=r"OPA rejected the policy bundle.*no_such_function"):
        opa_engine.reload_if_changed()
    assert opa_engine.bundle_digest == good
    assert opa_engine.last_error is not None
    result = opa_engine.evaluate(to_input(sample("06-high-risk-expired-cert-deployment.yaml")))
    assert not result.allowed
    assert any("no unexpired certification" in m for m in result.deny)


def test_removed_module_is_deleted_from_server(
    opa_engine: OpaEngine, policy_copy: Path, opa_server: str
) -> None:
    extra = policy_copy / "modelgate" / "extra" / "extra.rego"
    extra.parent.mkdir()
    extra.write_text("package modelgate.extra\n\nanswer := 42\n")
    assert opa_engine.reload_if_changed()
    assert "modelgate/modelgate/extra/extra.rego" in _policy_ids(opa_server)
    extra.unlink()
    assert opa_engine.reload_if_changed()
    assert "modelgate/modelgate/extra/extra.rego" not in _policy_ids(opa_server)


def test_policies_lost_by_the_server_are_pushed_again(
    opa_engine: OpaEngine, opa_server: str
) -> None:
    for policy_id in _policy_ids(opa_server):
        if policy_id.startswith("modelgate/"):
            requests.delete(f"{opa_server}/v1/policies/{policy_id}", timeout=5)
    result = opa_engine.evaluate(to_input(sample("02-missing-fields-deployment.yaml")))
    assert not result.allowed


def test_unreachable_server_is_an_evaluation_error(policy_copy: Path) -> None:
    engine = OpaEngine(policy_copy, f"http://127.0.0.1:{free_port()}", timeout=1)
    try:
        assert not engine.ready()
        assert engine.last_error is not None and "cannot push" in engine.last_error
        with pytest.raises(EvaluationError):
            engine.evaluate(to_input(sample("01-compliant-deployment.yaml")))
    finally:
        engine.close()


def test_server_that_does_not_answer_is_a_timeout(opa_engine: OpaEngine) -> None:
    # a socket that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = silent.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = silent.getsockname()[1]
    try:
        engine = OpaEngine(POLICY_DIR, f"http://127.0.0.1:{port}", timeout=0.5)
        # the first push timed out too, so give it the bundle the way a recovered OPA would
        engine._bundle = opa_engine.bundle
        with pytest.raises(EvaluationTimeout, match=r"did not answer within 0.5s"):
            engine.evaluate(to_input(sample("01-compliant-deployment.yaml")))
        engine.close()
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        silent.close()


def test_unreachable_server_at_start_is_retried_by_reload(
    policy_copy: Path, opa_server: str
) -> None:
    engine = OpaEngine(policy_copy, "http://127.0.0.1:9", timeout=0.5)
    assert not engine.ready()
    # the same directory, now reachable: the failed push is retried although nothing changed
    engine._client = OpaEngine(policy_copy, opa_server, timeout=5)._client
    engine.opa_url = opa_server
    assert engine.reload_if_changed() is True
    assert engine.ready()
    engine.close()


def test_watcher_pushes_edits_without_restart(opa_server: str, policy_copy: Path) -> None:
    settings = Settings(
        policy_engine="opa", opa_url=opa_server, policy_dir=policy_copy, policy_reload_seconds=0.05
    )
    engine = engine_for(settings, watch=True)
    without_source = to_input(with_annotations(sample("01-compliant-deployment.yaml"), source=None))
    try:
        assert engine.evaluate(without_source).allowed
        require_field(policy_copy, "source")
        deadline = time.monotonic() + 10
        while engine.evaluate(without_source).allowed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not engine.evaluate(without_source).allowed
    finally:
        engine.close()
