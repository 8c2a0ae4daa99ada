"""PolicyConfig: the bundle's data (required fields, warning window, tiers, statuses) as the
auditor and the dashboard read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from policies import BUNDLE_DIR
from policies.config import PolicyConfig


def _bundle_copy(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "policies"
    shutil.copytree(BUNDLE_DIR / "modelgate", root / "modelgate")
    return root, root / "modelgate" / "config" / "data.yaml"


def test_defaults_are_the_shipped_bundles_values() -> None:
    assert PolicyConfig.load(BUNDLE_DIR) == PolicyConfig()


def test_an_edited_data_file_is_read(tmp_path: Path) -> None:
    root, data_file = _bundle_copy(tmp_path)
    data = yaml.safe_load(data_file.read_text(encoding="utf-8"))
    data["certification_warning_days"] = 90
    data["required_fields"] = [*data["required_fields"], "source"]
    data_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = PolicyConfig.load(root)
    assert config.certification_warning_days == 90
    assert config.required_fields[-1] == "source"
    assert config.risk_tiers == PolicyConfig().risk_tiers


def test_a_missing_or_odd_bundle_gives_the_defaults(tmp_path: Path) -> None:
    assert PolicyConfig.load(tmp_path / "nowhere") == PolicyConfig()
    root, data_file = _bundle_copy(tmp_path)
    data_file.write_text("certification_warning_days: soon\nrisk_tiers: 3\n", encoding="utf-8")
    assert PolicyConfig.load(root) == PolicyConfig()


def test_fields_required_per_tier_and_the_owner_label_are_read(tmp_path: Path) -> None:
    root, data_file = _bundle_copy(tmp_path)
    data = yaml.safe_load(data_file.read_text(encoding="utf-8"))
    assert data["tier_required_fields"] == {}  # optional in the shipped policy
    data["tier_required_fields"] = {"high": ["intended-purpose", "owner", "limitations"]}
    data["namespace_owner_label"] = "example.com/team"
    data_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = PolicyConfig.load(root)
    assert config.tier_required_fields == {"high": ("intended-purpose", "owner", "limitations")}
    assert config.namespace_owner_label == "example.com/team"
    assert config.required_for("high") == (
        *PolicyConfig().required_fields,
        "model-card",
        "certifications",
        "intended-purpose",
        "limitations",
    )
    assert config.required_for("limited") == PolicyConfig().required_fields
    assert PolicyConfig().required_for("high")[-2:] == ("model-card", "certifications")
    assert PolicyConfig().remediation_window("high") == 30
    assert PolicyConfig().remediation_window("unheard-of") is None
