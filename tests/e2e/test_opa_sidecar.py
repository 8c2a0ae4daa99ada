"""The chart's OPA sidecar mode end to end: OPA started with the sidecar's own arguments (empty),
the webhook with MODELGATE_POLICY_ENGINE=opa pushing the kubelet-mounted bundle to it, kubectl
decisions through the real API server, a ConfigMap update, and an OPA restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.charts.mount import KubeletMount, chart_policy_files
from tests.e2e.support import (
    PREFIX,
    RELEASE_NAMESPACE,
    Inventory,
    Webhook,
    WebhookTLS,
    apply_result,
    cleanup,
    deployment,
    ensure_namespace,
    model_annotations,
    render_webhook_configuration,
    unique_name,
    wait_until,
    webhook_env,
)
from tests.fixtures.cluster import Cluster
from tests.fixtures.tools import free_port, tool

pytestmark = pytest.mark.e2e

VWC_NAME = "modelgate-e2e-opa"
NS = "ml-opa"


class OpaSidecar:
    """`opa` with the arguments the chart gives its sidecar (ports moved to free ones)."""

    def __init__(self, workdir: Path) -> None:
        _, args = chart_policy_files()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [tool("opa")]
        for a in args:
            if a.startswith("--addr="):
                a = f"--addr=127.0.0.1:{self.port}"
            elif a.startswith("--diagnostic-addr="):
                a = f"--diagnostic-addr=127.0.0.1:{free_port()}"
            self.argv.append(a)
        self.log = workdir / "opa.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            assert self._proc is not None and self._proc.poll() is None, self.log.read_text()
            try:
                return requests.get(f"{self.url}/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=30, interval=0.2, what="opa to answer /health")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=20)
        self._proc = None

    def modelgate_policies(self) -> list[str]:
        r = requests.get(f"{self.url}/v1/policies", timeout=5)
        r.raise_for_status()
        return [p["id"] for p in r.json()["result"] if p["id"].startswith("modelgate/")]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaSidecar]:
    sidecar = OpaSidecar(tmp_path_factory.mktemp("opa"))
    sidecar.start()
    try:
        yield sidecar
    finally:
        sidecar.stop()


@pytest.fixture(scope="module")
def cluster(
    kube_cluster: Cluster,
    opa: OpaSidecar,
    webhook_tls: WebhookTLS,
    inventory: Inventory,
    policy_mount: KubeletMount,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    assert opa.modelgate_policies() == []  # the sidecar starts empty
    env = {
        **webhook_env(inventory, policy_mount),
        "MODELGATE_POLICY_ENGINE": "opa",
        "MODELGATE_OPA_URL": opa.url,
    }
    hook = Webhook(webhook_tls, env, tmp_path_factory.mktemp("wh"))
    hook.start()
    c = kube_cluster
    try:
        ensure_namespace(c, NS)
        ensure_namespace(c, RELEASE_NAMESPACE)
        c.apply(render_webhook_configuration(hook.url, webhook_tls.ca_bundle(), VWC_NAME))
        probe = deployment(unique_name("probe"), NS, {})
        wait_until(
            lambda: "modelgate" in apply_result(c, probe, "--dry-run=server").stderr,
            timeout=60,
            what="the webhook configuration to take effect",
        )
        yield c
    finally:
        c.kubectl("delete", "validatingwebhookconfiguration", VWC_NAME, "--ignore-not-found")
        cleanup(c, "deployments.apps")
        hook.stop()


def _refused_for(c: Cluster, obj: dict[str, Any], text: str) -> bool:
    r = apply_result(c, obj, "--dry-run=server")
    return r.returncode != 0 and text in r.stderr


def test_the_webhook_pushed_the_bundle_and_opa_decides(cluster: Cluster, opa: OpaSidecar) -> None:
    assert "modelgate/modelgate/admission/admission.rego" in opa.modelgate_policies()
    bare = apply_result(cluster, deployment(unique_name("bare"), NS, {}))
    assert bare.returncode != 0
    assert 'admission webhook "validate.modelgate.dev" denied the request' in bare.stderr
    assert f"{PREFIX}owner" in bare.stderr and f"{PREFIX}training-data" in bare.stderr
    name = unique_name("ok")
    ok = apply_result(cluster, deployment(name, NS, model_annotations(name)))
    assert ok.returncode == 0, ok.stderr


def test_configmap_update_is_pushed_to_opa(cluster: Cluster, policy_mount: KubeletMount) -> None:
    original = dict(policy_mount.files)
    path = "modelgate/config/data.yaml"
    data = yaml.safe_load(original[path])
    data["required_fields"] = [*data["required_fields"], "source"]
    name = unique_name("upd")
    obj = deployment(name, NS, model_annotations(name))
    assert apply_result(cluster, obj, "--dry-run=server").returncode == 0
    policy_mount.write({**original, path: yaml.safe_dump(data, sort_keys=False)})
    try:
        wait_until(
            lambda: _refused_for(cluster, obj, f"{PREFIX}source"),
            timeout=30,
            what="the updated bundle to reach OPA",
        )
    finally:
        policy_mount.write(original)
    wait_until(
        lambda: apply_result(cluster, obj, "--dry-run=server").returncode == 0,
        timeout=30,
        what="the restored bundle to reach OPA",
    )


def test_a_restarted_empty_opa_gets_the_bundle_again(cluster: Cluster, opa: OpaSidecar) -> None:
    opa.stop()
    opa.start()  # a new, empty OPA process (no persistence): the webhook's background
    # re-push may fill it before the first look, so what counts is that decisions come back
    bare = deployment(unique_name("after-restart"), NS, {})
    wait_until(
        lambda: _refused_for(cluster, bare, f"{PREFIX}model-name"),
        timeout=30,
        what="a policy decision after the OPA restart",
    )
    assert opa.modelgate_policies()
    name = unique_name("ok")
    assert apply_result(cluster, deployment(name, NS, model_annotations(name))).returncode == 0
