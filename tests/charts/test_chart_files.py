"""charts/modelgate as files: lint, documentation of every value, the policy bundle copy."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.helm import CHART, CI_VALUES, helm, one, render
from tests.fixtures.tools import REPO_ROOT

MODES = {
    "certmanager",
    "generated",
    "existing-secret",
    "opa-sidecar",
    "url",
    "trial",
    "dashboard-ingress",
}


def test_there_is_a_ci_values_file_for_every_mode() -> None:
    assert {p.name.removesuffix("-values.yaml") for p in CI_VALUES} == MODES


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict_passes(values: Path) -> None:
    proc = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def test_helm_lint_strict_passes_on_the_chart_defaults() -> None:
    # helm lint downgrades `fail` to [INFO]: the defaults (bundled trial PostgreSQL) must not
    # hit any
    proc = helm("lint", "--strict", str(CHART), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fail:" not in proc.stderr, proc.stderr


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


def test_chart_readme_values_table_is_current() -> None:
    """README.md's table is generated from values.yaml (charts/modelgate/values-table.py)."""
    spec = importlib.util.spec_from_file_location("values_table", CHART / "values-table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    values_text = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert module.render_readme(readme, values_text) == readme, (
        "charts/modelgate/README.md is stale: run `python charts/modelgate/values-table.py --write`"
    )
    for key in _documented_keys(values_text):
        assert f"`{key}`" in readme


def test_container_arguments_are_accepted_by_the_modelgate_cli() -> None:
    """Every modelgate container's args parse with the real CLI (`--help` stops before running)."""
    objs = render(sets={"opa.enabled": "true"})
    specs = [
        one(objs, "Deployment")["spec"]["template"]["spec"],
        one(objs, "Job")["spec"]["template"]["spec"],
        one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]
    checked = 0
    for spec in specs:
        for c in spec["containers"]:
            if "/modelgate:" not in c["image"]:
                continue
            proc = subprocess.run(
                [str(REPO_ROOT / ".venv" / "bin" / "modelgate"), *c["args"], "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, (c["name"], c["args"], proc.stderr)
            assert "Usage: modelgate" in proc.stdout
            checked += 1
    assert checked == 3


def _bundle_files(root: Path) -> dict[str, str]:
    """What the bundle loader serves: *.rego modules (not tests) and data files."""
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in root.rglob("*")
        if p.is_file()
        and (
            (p.suffix == ".rego" and not p.name.endswith("_test.rego"))
            or p.name in ("data.json", "data.yaml", "data.yml")
        )
    }


def test_chart_ships_the_repository_policy_bundle_without_tests() -> None:
    """files/policies/modelgate links to policies/modelgate, so the chart cannot drift."""
    link = CHART / "files" / "policies" / "modelgate"
    assert link.is_symlink()
    assert link.resolve() == (REPO_ROOT / "policies" / "modelgate").resolve()
    expected = _bundle_files(REPO_ROOT / "policies")
    assert "modelgate/config/data.yaml" in expected
    cm = one(render(), "ConfigMap")
    shipped = {k.replace("__", "/"): v for k, v in cm["data"].items()}
    assert set(shipped) == set(expected)
    for path, content in expected.items():
        assert shipped[path].rstrip("\n") == content.rstrip("\n"), path


def test_packaged_chart_contains_the_bundle_without_tests(tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("modelgate-*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    policies = [n for n in names if "/files/policies/" in n]
    assert "modelgate/files/policies/modelgate/config/data.yaml" in policies
    assert "modelgate/files/policies/modelgate/admission/admission.rego" in policies
    assert not [n for n in policies if n.endswith("_test.rego")]
    assert not [n for n in names if n.startswith("modelgate/ci/")]


def test_no_template_uses_a_latest_tag() -> None:
    for path in [CHART / "values.yaml", *CI_VALUES, *(CHART / "templates").iterdir()]:
        assert not re.search(r":\s*[\"']?latest[\"']?\s*$", path.read_text(), re.M), path
