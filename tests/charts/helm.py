"""Rendering charts/modelgate with the project's pinned helm, for assertions on the YAML."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.tools import REPO_ROOT, tool

CHART = REPO_ROOT / "charts" / "modelgate"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "mg"
NAMESPACE = "modelgate"
# what the webhook-centred template tests start from: an external database Secret, and the
# dashboard left out so each kind has one object (tests/charts/test_dashboard_chart.py renders
# the dashboard and the bundled PostgreSQL, the defaults)
BASE_SET = {"database.existingSecret": "modelgate-database", "dashboard.enabled": "false"}


class HelmFailed(RuntimeError):
    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise HelmFailed(list(args), proc.stderr)
    return proc


def _template_args(
    values_files: Iterable[Path],
    sets: Mapping[str, str],
    set_json: Mapping[str, Any],
    namespace: str,
    release: str,
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for f in values_files:
        args += ["-f", str(f)]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    for k, j in set_json.items():
        args += ["--set-json", f"{k}={json.dumps(j)}"]
    return args


def render_text(
    *values_files: Path,
    sets: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    base: bool = True,
) -> str:
    merged = {**(BASE_SET if base else {}), **(sets or {})}
    args = _template_args(values_files, merged, set_json or {}, namespace, release)
    return helm(*args).stdout


def render(
    *values_files: Path,
    sets: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    base: bool = True,
) -> list[dict[str, Any]]:
    """Every rendered object (hooks included), in helm's install order."""
    text = render_text(
        *values_files,
        sets=sets,
        set_json=set_json,
        namespace=namespace,
        release=release,
        base=base,
    )
    return [d for d in yaml.safe_load_all(text) if d]


def render_error(
    *values_files: Path,
    sets: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    base: bool = True,
) -> str:
    """helm's error output for values that must be refused (fails the test if rendering works)."""
    merged = {**(BASE_SET if base else {}), **(sets or {})}
    args = _template_args(values_files, merged, set_json or {}, NAMESPACE, RELEASE)
    proc = helm(*args, check=False)
    assert proc.returncode != 0, f"helm rendered values that should be refused: {merged}"
    return proc.stderr


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
