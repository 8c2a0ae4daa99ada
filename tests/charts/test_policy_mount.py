"""The chart's policy ConfigMap, laid out on disk the way the kubelet mounts it (timestamped
folder, `..data` symlink, one symlink per top-level item, atomically swapped on update), is a
bundle both engines load: the embedded one through `modelgate evaluate`, and OPA started with
the sidecar's own arguments, which also follows an update without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.charts.mount import KubeletMount, chart_policy_files
from tests.fixtures.tools import REPO_ROOT, free_port, tool

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
        [MODELGATE, "evaluate", "-f", "-", "--output", "json"],
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


@pytest.fixture
def opa_sidecar(tmp_path: Path) -> Iterator[tuple[str, KubeletMount, dict[str, str]]]:
    files, args = chart_policy_files()
    mount = KubeletMount(tmp_path / "policies")
    mount.write(files)
    port = free_port()
    # the sidecar's own arguments, with the loopback port and mount path of this test
    argv = [tool("opa")]
    for a in args:
        if a.startswith("--addr="):
            a = f"--addr=127.0.0.1:{port}"
        elif a.startswith("--diagnostic-addr="):
            continue
        elif a == "/etc/modelgate/policies":
            a = str(mount.root)
        argv.append(a)
    log = (tmp_path / "opa.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "opa.log").read_text()
            time.sleep(0.2)
        yield url, mount, files
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _required_fields(url: str) -> list[str]:
    r = requests.get(f"{url}/v1/data/modelgate/config/required_fields", timeout=5)
    r.raise_for_status()
    fields: list[str] = r.json().get("result", [])
    return fields


def test_opa_sidecar_arguments_load_the_mount_and_follow_updates(
    opa_sidecar: tuple[str, KubeletMount, dict[str, str]],
) -> None:
    url, mount, files = opa_sidecar
    shipped = yaml.safe_load(files["modelgate/config/data.yaml"])["required_fields"]
    assert _required_fields(url) == shipped
    # the admission package compiled (the hidden ..data copies were ignored, no conflicts)
    r = requests.post(f"{url}/v1/data/modelgate/admission/is_model", json={"input": {}}, timeout=5)
    assert r.status_code == 200 and "result" in r.json(), r.text
    data = yaml.safe_load(files["modelgate/config/data.yaml"])
    data["required_fields"].append("source")
    mount.write({**files, "modelgate/config/data.yaml": yaml.safe_dump(data)})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "source" not in _required_fields(url):
        time.sleep(0.3)
    assert _required_fields(url) == [*shipped, "source"]
