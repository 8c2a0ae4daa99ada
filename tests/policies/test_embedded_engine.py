"""The embedded (rego-cpp) engine: decisions on the samples, reloads, broken bundles, threads."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from modelgate.engine import engine_for
from modelgate.settings import Settings
from policies.engines import create_engine
from policies.engines.base import BundleError, EvaluationError, PolicyEngine, PolicyResult
from policies.engines.embedded import EmbeddedEngine
from tests.policies.samples import (
    TODAY,
    certs,
    require_field,
    sample,
    sample_inputs,
    to_input,
    variations,
    with_annotations,
)


def test_denial_lists_every_missing_field_with_its_fix(embedded: EmbeddedEngine) -> None:
    result = embedded.evaluate(to_input(sample("16-seldon-seldondeployment.yaml")))
    assert len(result.deny) == 6
    assert (
        'missing required annotation "modelgate.dev/owner": '
        "set it to the owning person or team (e-mail)"
    ) in result.deny


def test_off_namespace_still_reports_violations_but_denies_nothing(
    embedded: EmbeddedEngine,
) -> None:
    result = embedded.evaluate(to_input(sample("18-off-namespace-deployment.yaml")))
    assert result.enforcement == "off"
    assert result.deny == () and result.warn == ()
    assert len(result.violations) == 6


def test_certification_expiring_soon_is_a_warning(embedded: EmbeddedEngine) -> None:
    soon = TODAY + timedelta(days=10)
    obj = with_annotations(
        sample("05-high-risk-certified-deployment.yaml"),
        certifications=certs(("EU-AI-Act-conformity", soon)),
    )
    result = embedded.evaluate(to_input(obj))
    assert result.allowed
    assert result.warn == (
        f'certification "EU-AI-Act-conformity" in "modelgate.dev/certifications" expires on '
        f"{soon}, within 30 days: renew it and update the annotation",
    )


def test_value_with_quotes_is_not_echoed_and_does_not_break(embedded: EmbeddedEngine) -> None:
    result = embedded.evaluate(variations()["odd-quoted-name"])
    assert not result.allowed
    assert any('"modelgate.dev/model-name" value (value not shown)' in m for m in result.deny)


def test_engine_satisfies_the_protocol(embedded: EmbeddedEngine) -> None:
    assert isinstance(embedded, PolicyEngine)
    assert embedded.name == "embedded"
    assert len(embedded.bundle_digest) == 64


def test_unserialisable_input_is_an_evaluation_error(embedded: EmbeddedEngine) -> None:
    with pytest.raises(EvaluationError, match="not JSON-serialisable"):
        embedded.evaluate({"workload": object()})


def test_create_engine_builds_embedded_by_default(policy_copy: Path) -> None:
    for engine in (
        create_engine(policy_dir=policy_copy),
        engine_for(Settings(policy_dir=policy_copy)),
    ):
        try:
            assert isinstance(engine, EmbeddedEngine)
            assert engine.ready()
            assert engine.policy_dir == policy_copy
        finally:
            engine.close()


def test_create_engine_refuses_an_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown policy engine 'wasm'"):
        create_engine("wasm")


# -- reloading -------------------------------------------------------------------------


def _require_source(policy_dir: Path) -> None:
    require_field(policy_dir, "source")


def _break(policy_dir: Path) -> None:
    rego = policy_dir / "modelgate" / "risk" / "risk.rego"
    rego.write_text(rego.read_text() + "\nbroken if {\n\tinput.x ==\n}\n")


def test_unchanged_directory_is_not_reloaded(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    assert engine.reload_if_changed() is False


def test_edited_data_takes_effect_on_reload(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    compliant = to_input(sample("01-compliant-deployment.yaml"))
    assert engine.evaluate(compliant).allowed
    before = engine.bundle_digest
    _require_source(policy_copy)
    # (the compliant sample carries modelgate.dev/source: make a sample without it)
    without = to_input(with_annotations(sample("01-compliant-deployment.yaml"), source=None))
    assert engine.reload_if_changed() is True
    assert engine.bundle_digest != before
    result = engine.evaluate(without)
    assert result.deny == (
        'missing required annotation "modelgate.dev/source": see the modelgate metadata contract',
    )
    assert result.bundle_digest == engine.bundle_digest


def test_broken_bundle_is_rejected_and_last_good_keeps_serving(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    good = engine.bundle_digest
    _break(policy_copy)
    with pytest.raises(BundleError, match=r"does not compile.*risk\.rego"):
        engine.reload_if_changed()
    assert engine.last_error is not None and "risk.rego" in engine.last_error
    assert engine.ready()
    assert engine.bundle_digest == good
    result = engine.evaluate(to_input(sample("02-missing-fields-deployment.yaml")))
    assert not result.allowed and result.bundle_digest == good
    # reported once: an unchanged broken directory is not recompiled on every check
    assert engine.reload_if_changed() is False


def test_fixed_bundle_replaces_the_broken_one(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    rego = policy_copy / "modelgate" / "risk" / "risk.rego"
    original = rego.read_text()
    _break(policy_copy)
    with pytest.raises(BundleError):
        engine.reload_if_changed()
    rego.write_text(original + "\n# fixed\n")
    assert engine.reload_if_changed() is True
    assert engine.last_error is None


def test_first_load_failure_leaves_engine_not_ready(policy_copy: Path) -> None:
    _break(policy_copy)
    engine = EmbeddedEngine(policy_copy)
    assert not engine.ready()
    assert engine.bundle_digest == ""
    with pytest.raises(EvaluationError, match="no policy bundle loaded"):
        engine.evaluate(to_input(sample("01-compliant-deployment.yaml")))


def test_watcher_applies_edits_without_restart(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    engine.start_watching(0.05)
    try:
        without = to_input(with_annotations(sample("01-compliant-deployment.yaml"), source=None))
        assert engine.evaluate(without).allowed
        _require_source(policy_copy)
        deadline = time.monotonic() + 10
        while engine.evaluate(without).allowed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not engine.evaluate(without).allowed
        served = engine.bundle_digest
        _break(policy_copy)
        deadline = time.monotonic() + 10
        while engine.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.last_error is not None
        assert engine.bundle_digest == served
        assert not engine.evaluate(without).allowed
    finally:
        engine.close()


def test_concurrent_evaluations_match_serial_ones(embedded: EmbeddedEngine) -> None:
    inputs = list(sample_inputs().values()) + list(variations().values())[:20]
    expected = [embedded.evaluate(i) for i in inputs]
    failures: list[str] = []
    results: dict[tuple[int, int], PolicyResult] = {}

    def work(worker: int) -> None:
        try:
            for n in range(3):
                for k, policy_input in enumerate(inputs):
                    results[(worker, n * len(inputs) + k)] = embedded.evaluate(
                        policy_input, deadline=time.monotonic() + 120
                    )
        except Exception as e:  # collected and asserted below
            failures.append(repr(e))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    for (_worker, index), result in results.items():
        assert result == expected[index % len(inputs)]


def test_evaluation_does_not_recompile(policy_copy: Path) -> None:
    """Each evaluator process compiles its bundle once: evaluations start no process, a new
    bundle gets new evaluators."""
    engine = EmbeddedEngine(policy_copy)
    try:
        pids = engine.evaluator_pids
        assert len(pids) == 2
        for policy_input in sample_inputs().values():
            engine.evaluate(policy_input)
        assert engine.reload_if_changed() is False
        assert engine.evaluator_pids == pids
        require_field(policy_copy, "source")
        assert engine.reload_if_changed() is True
        assert engine.evaluator_pids.isdisjoint(pids)
    finally:
        engine.close()


def test_json_annotations_with_unicode_escapes_are_parsed(embedded: EmbeddedEngine) -> None:
    # json.dumps escapes non-ASCII as \uXXXX by default; rego-cpp alone cannot parse that
    obj = with_annotations(
        sample("05-high-risk-certified-deployment.yaml"),
        certifications='[{"name": "Konformit\\u00e4t", "expires": "2099-01-01"}]',
        metrics='{"pr\\u00e4zision": 0.9}',
    )
    result = embedded.evaluate(to_input(obj))
    assert result.allowed, result.deny
    assert result.violations == ()


def test_backslashes_and_control_characters_are_judged_not_a_failed_evaluation(
    embedded: EmbeddedEngine,
) -> None:
    # rego-cpp aborted the whole evaluation on these (trim_space, json.is_valid), which failure
    # mode open would have admitted unchecked; they are now judged like OPA judges them
    plain = sample("01-compliant-deployment.yaml")
    fine = {
        "owner": "DOMAIN\\ml-team",
        "training_data": "\\\\nas\\datasets\\train.csv,s3://b/x",
        "compliance_status": "\tapproved\n",
        "source": "C:\\src\\x41",
    }
    for field, value in fine.items():
        result = embedded.evaluate(to_input(with_annotations(plain, **{field: value})))
        assert result.allowed and result.violations == (), (field, result.deny)
    bad = {
        "model_name": ("fraud\\x41", "modelgate.dev/model-name"),
        "training_data": ("a\\e b", "modelgate.dev/training-data"),
        "metrics": ('{"auc": "\\x41"}', "modelgate.dev/metrics"),
        "certifications": ("[\\x41]", "modelgate.dev/certifications"),
    }
    for field, (value, key) in bad.items():
        result = embedded.evaluate(to_input(with_annotations(plain, **{field: value})))
        assert not result.allowed, field
        assert any(key in msg for msg in result.deny), (field, result.deny)


def test_create_engine_with_watch_reloads_edits(policy_copy: Path) -> None:
    settings = Settings(policy_dir=policy_copy, policy_reload_seconds=0.05)
    engine = engine_for(settings, watch=True)
    try:
        before = engine.bundle_digest
        require_field(policy_copy, "source")
        deadline = time.monotonic() + 10
        while engine.bundle_digest == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.bundle_digest != before
    finally:
        engine.close()


def test_bundle_without_the_admission_package_is_rejected(policy_copy: Path) -> None:
    engine = EmbeddedEngine(policy_copy)
    admission = policy_copy / "modelgate" / "admission" / "admission.rego"
    admission.write_text(admission.read_text().replace("package modelgate.admission", "package x"))
    with pytest.raises(BundleError, match="does not answer its digest"):
        engine.reload_if_changed()
    assert engine.ready()
    assert engine.evaluate(to_input(sample("01-compliant-deployment.yaml"))).allowed
