"""The envtest-like control plane: two independent clusters, admin access for kubectl and the
Python client, RBAC in force, clean teardown, and `make cluster`'s entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from tests.e2e.support import wait_until
from tests.fixtures.cluster import Cluster, start_cluster
from tests.fixtures.tools import REPO_ROOT, tool

pytestmark = pytest.mark.e2e


def test_two_clusters_are_independent(kube_cluster: Cluster, kube_cluster_b: Cluster) -> None:
    assert kube_cluster.server != kube_cluster_b.server
    name = f"only-in-a-{uuid.uuid4().hex[:6]}"
    kube_cluster.create_namespace(name)
    assert kube_cluster.get_json(f"namespace/{name}")["metadata"]["name"] == name
    missing = kube_cluster_b.kubectl("get", "namespace", name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_python_client_reads_the_admin_kubeconfig(kube_cluster: Cluster) -> None:
    api = k8s_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    names = {ns.metadata.name for ns in k8s_client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_rbac_is_enforced_for_non_admins(kube_cluster: Cluster) -> None:
    r = kube_cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "secrets",
        "--as",
        "system:serviceaccount:default:nobody",
        check=False,
    )
    assert r.stdout.strip() == "no"
    assert kube_cluster.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_user_kubeconfig_is_subject_to_rbac(kube_cluster: Cluster) -> None:
    ns = f"rbac-{uuid.uuid4().hex[:6]}"
    kube_cluster.create_namespace(ns)
    sa = f"system:serviceaccount:{ns}:reader"
    kubeconfig = kube_cluster.user_kubeconfig(sa)

    def kubectl_as(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    denied = kubectl_as("get", "configmaps", "-n", ns)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    assert f'User "{sa}"' in denied.stderr
    kube_cluster.kubectl("create", "serviceaccount", "reader", "-n", ns)
    kube_cluster.kubectl(
        "create", "role", "cm-reader", "--verb=list", "--resource=configmaps", "-n", ns
    )
    kube_cluster.kubectl(
        "create",
        "rolebinding",
        "cm-reader",
        "--role=cm-reader",
        f"--serviceaccount={ns}:reader",
        "-n",
        ns,
    )
    # the RBAC authorizer's cache follows the new binding within moments
    wait_until(
        lambda: kubectl_as("get", "configmaps", "-n", ns).returncode == 0,
        timeout=30,
        what="the RoleBinding to take effect",
    )
    assert kubectl_as("get", "secrets", "-n", ns).returncode != 0


def test_stop_ends_etcd_and_the_api_server(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "c", "short")
    assert cluster.running
    assert requests.get(
        f"{cluster.server}/readyz",
        cert=(str(cluster.admin.cert), str(cluster.admin.key)),
        verify=str(cluster.ca),
        timeout=5,
    ).ok
    cluster.stop()
    assert not cluster.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{cluster.server}/readyz", verify=str(cluster.ca), timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{cluster.etcd_url}/health", timeout=5)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_make_cluster_entry_point_prints_a_kubeconfig_and_stops_on_a_signal(
    stop_signal: signal.Signals,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.cluster"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as `make cluster` runs it: from the repository root, no PYTHONPATH
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    kubeconfig = server = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not kubeconfig:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("kube-apiserver:"):
                server = line.split(":", 1)[1].strip()
            if line.startswith("kubeconfig:"):
                kubeconfig = line.split(":", 1)[1].strip()
        assert kubeconfig, proc.stderr.read() if proc.stderr else ""
        out = subprocess.run(
            [tool("kubectl"), "--kubeconfig", kubeconfig, "get", "namespace", "default"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0
        assert not Path(kubeconfig).exists()
        # etcd and kube-apiserver were stopped with it, not orphaned
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server}/readyz", verify=False, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
