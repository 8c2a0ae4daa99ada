"""Loading the policy directory: what is served, where data lands, what the digest covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.bundle import fingerprint, load_bundle
from policies.engines.base import BundleError
from policies.rules import bundle_rules
from tests.policies.samples import POLICY_DIR, copy_policies


def test_served_modules_exclude_tests_and_python() -> None:
    bundle = load_bundle(POLICY_DIR)
    assert "modelgate/admission/admission.rego" in bundle.modules
    assert all(not rel.endswith("_test.rego") for rel in bundle.modules)
    assert "modelgate/admission/admission_test.rego" in bundle.test_modules
    assert not any(rel.endswith(".py") for rel in [*bundle.modules, *bundle.test_modules])


def test_data_file_lands_at_its_directory_path() -> None:
    bundle = load_bundle(POLICY_DIR)
    config = bundle.data["modelgate"]["config"]
    assert config["certification_warning_days"] == 30
    assert "compliance-status" in config["required_fields"]
    assert ("modelgate", "config") in bundle.data_files


def test_digest_is_stable_for_same_content(policy_copy: Path) -> None:
    assert load_bundle(policy_copy).digest == load_bundle(POLICY_DIR).digest


def test_digest_changes_when_rego_changes(policy_copy: Path) -> None:
    before = load_bundle(policy_copy).digest
    rego = policy_copy / "modelgate" / "risk" / "risk.rego"
    rego.write_text(rego.read_text() + "\n# a comment is a change too\n")
    assert load_bundle(policy_copy).digest != before


def test_digest_changes_when_data_changes(policy_copy: Path) -> None:
    before = load_bundle(policy_copy).digest
    data = policy_copy / "modelgate" / "config" / "data.yaml"
    data.write_text(
        data.read_text().replace("certification_warning_days: 30", "certification_warning_days: 45")
    )
    after = load_bundle(policy_copy)
    assert after.digest != before
    assert after.data["modelgate"]["config"]["certification_warning_days"] == 45


def test_digest_ignores_test_modules(policy_copy: Path) -> None:
    before = load_bundle(policy_copy).digest
    test = policy_copy / "modelgate" / "risk" / "risk_test.rego"
    test.write_text(test.read_text() + "\n# tests do not affect decisions\n")
    assert load_bundle(policy_copy).digest == before


def test_fingerprint_notices_new_files(policy_copy: Path) -> None:
    before = fingerprint(policy_copy)
    (policy_copy / "modelgate" / "extra.rego").write_text("package modelgate.extra\n\nx := 1\n")
    assert fingerprint(policy_copy) != before


def test_invalid_data_file_is_a_bundle_error(policy_copy: Path) -> None:
    (policy_copy / "modelgate" / "config" / "data.yaml").write_text("key: [unclosed\n")
    with pytest.raises(BundleError, match=r"data.yaml is not valid yaml"):
        load_bundle(policy_copy)


def test_missing_directory_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


def test_directory_without_rego_is_a_bundle_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(BundleError, match="no Rego modules"):
        load_bundle(tmp_path)


def test_the_rules_applied_are_each_packages_metadata(tmp_path: Path) -> None:
    root = copy_policies(tmp_path)
    shipped = {r.package: r for r in bundle_rules(load_bundle(root))}
    assert set(shipped) == {
        "modelgate.admission",
        "modelgate.compliance",
        "modelgate.detection",
        "modelgate.enforcement",
        "modelgate.limits",
        "modelgate.metadata",
        "modelgate.risk",
    }  # the helpers (custom.rule: false) and the tests are not rules
    assert shipped["modelgate.metadata"].title == "Required and well-formed metadata"
    assert "\n" not in shipped["modelgate.metadata"].description
    assert shipped["modelgate.metadata"].description.startswith("Every required")
    (root / "modelgate" / "extra").mkdir()
    (root / "modelgate" / "extra" / "extra.rego").write_text(
        "# METADATA\n# title: No GPUs on weekends\n# description: |\n#   A house rule.\n"
        "#   On two lines.\npackage modelgate.extra\n\nimport rego.v1\n",
        encoding="utf-8",
    )
    (root / "modelgate" / "extra" / "plain.rego").write_text(
        "package modelgate.plain\n", encoding="utf-8"
    )
    rules = {r.package: r for r in bundle_rules(load_bundle(root))}
    assert rules["modelgate.extra"].description == "A house rule. On two lines."
    assert "modelgate.plain" not in rules
