"""The chart's policy ConfigMap, laid out on disk the way the kubelet mounts it (timestamped
folder, `..data` symlink, one symlink per top-level item, atomically swapped on update), is a
bundle `modelgate evaluate` loads, before and after an update. (The OPA sidecar mode, and the
running webhook following updates, are exercised end to end in tests/e2e.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.charts.mount import KubeletMount, chart_policy_files
from tests.fixtures.tools import REPO_ROOT

MODELGATE = str(REPO_ROOT / ".venv" / "bin" / "modelgate")


def _manifest(annotations: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "scorer",
                "namespace": "ml",
                "labels": {"modelgate.dev/model": "true"},
                "annotations": annotations,
            },
            "spec": {
                "selector": {"matchLabels": {"app": "scorer"}},
                "template": {
                    "metadata": {"labels": {"app": "scorer"}},
                    "spec": {"containers": [{"name": "s", "image": "example.com/scorer:1.0.0"}]},
                },
            },
        }
    )


COMPLIANT = {
    "modelgate.dev/model-name": "scorer",
    "modelgate.dev/model-version": "1.0.0",
    "modelgate.dev/owner": "ml@example.com",
    "modelgate.dev/training-date": "2025-01-31",
    "modelgate.dev/training-data": "s3://data/train.parquet",
    "modelgate.dev/compliance-status": "approved",
}


def _evaluate(policy_dir: Path, annotations: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, "MODELGATE_POLICY_DIR": str(policy_dir)}
    proc = subprocess.run(
        [MODELGATE, "evaluate", "-f", "-", "--output", "json", "--approval-source", "annotation"],
        input=_manifest(annotations),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)[0]
    return result


def test_embedded_engine_loads_the_mounted_chart_bundle(tmp_path: Path) -> None:
    files, _ = chart_policy_files()
    mount = KubeletMount(tmp_path / "policies")
    mount.write(files)
    allowed = _evaluate(mount.root, COMPLIANT)
    assert allowed["is_model"] is True and allowed["allowed"] is True, allowed
    bare = _evaluate(mount.root, {"modelgate.dev/model-name": "scorer"})
    assert bare["allowed"] is False
    assert any("modelgate.dev/owner" in v for v in bare["violations"])
    # an updated ConfigMap (new required field) is what the next evaluation uses
    data = yaml.safe_load(files["modelgate/config/data.yaml"])
    data["required_fields"].append("source")
    mount.write({**files, "modelgate/config/data.yaml": yaml.safe_dump(data)})
    now = _evaluate(mount.root, COMPLIANT)
    assert now["allowed"] is False
    assert any("modelgate.dev/source" in v for v in now["violations"])
