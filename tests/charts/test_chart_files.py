"""charts/modelgate as files: lint, documentation of every value, the policy bundle copy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.helm import CHART, CI_VALUES, helm
from tests.fixtures.tools import REPO_ROOT

MODES = {"certmanager", "generated", "existing-secret", "opa-sidecar", "url"}


def test_there_is_a_ci_values_file_for_every_mode() -> None:
    assert {p.name.removesuffix("-values.yaml") for p in CI_VALUES} == MODES


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict_passes(values: Path) -> None:
    proc = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def test_helm_lint_strict_passes_on_the_chart_defaults() -> None:
    # helm lint downgrades `fail` to [INFO]; `helm template` refusing the missing database
    # Secret is asserted in test_templates.test_database_secret_is_required
    proc = helm("lint", "--strict", str(CHART), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "database.existingSecret is required" in proc.stderr


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node and not prefix.endswith(("resources", "SecurityContext")):
        out: list[str] = []
        for key, value in node.items():
            out += _leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [prefix]


def _documented_keys(values_text: str) -> set[str]:
    """Dotted paths of keys preceded by a `# --` comment block (helm-docs style)."""
    documented: set[str] = set()
    stack: list[tuple[int, str]] = []
    pending = False
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        m = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not m or stripped.startswith("-"):
            pending = False
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if pending:
            documented.add(".".join(k for _, k in stack))
        pending = False
    return documented


def test_every_value_is_documented_with_a_helm_docs_comment() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    documented = _documented_keys(text)
    missing = []
    for leaf in _leaf_paths(values):
        parts = leaf.split(".")
        # a documented ancestor (e.g. `resources`, `podSecurityContext`) documents its children
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            missing.append(leaf)
    assert not missing, f"values without a `# --` comment: {missing}"


def test_chart_readme_lists_every_documented_value() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    documented = _documented_keys((CHART / "values.yaml").read_text(encoding="utf-8"))
    missing = sorted(k for k in documented if f"`{k}`" not in readme)
    assert not missing, f"charts/modelgate/README.md misses values: {missing}"


def test_chart_policy_bundle_matches_policies_dir() -> None:
    """The chart ships a copy of policies/modelgate (without tests); it must not drift."""
    proc = subprocess.run(
        ["bash", str(CHART / "sync-policies.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    src = REPO_ROOT / "policies" / "modelgate"
    shipped = {
        p.relative_to(CHART / "files" / "policies" / "modelgate")
        for p in (CHART / "files" / "policies" / "modelgate").rglob("*")
        if p.is_file()
    }
    assert Path("config/data.yaml") in shipped
    assert not any(p.name.endswith("_test.rego") for p in shipped)
    assert all((src / p).is_file() for p in shipped)


def test_no_template_uses_a_latest_tag() -> None:
    for path in [CHART / "values.yaml", *CI_VALUES, *(CHART / "templates").iterdir()]:
        assert not re.search(r":\s*[\"']?latest[\"']?\s*$", path.read_text(), re.M), path
