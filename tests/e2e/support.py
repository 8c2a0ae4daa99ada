"""End-to-end helpers and fixtures: modelgate's webhook as a real process on loopback
(generated serving certificate, real PostgreSQL inventory, a policy directory the tests may
edit), registered in the test kube-apiserver through the ValidatingWebhookConfiguration the Helm
chart renders."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.charts.helm import CHART, helm
from tests.charts.mount import KubeletMount, chart_policy_files
from tests.fixtures.cluster import CertificateAuthority, Cluster, KubectlError
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.tools import REPO_ROOT, free_port

MODELGATE = str(REPO_ROOT / ".venv" / "bin" / "modelgate")
RELEASE_NAMESPACE = "modelgate"
CLUSTER_NAME = "e2e-a"
PREFIX = "modelgate.dev/"
REQUIRED = [
    "model-name",
    "model-version",
    "owner",
    "training-date",
    "training-data",
    "compliance-status",
]


# --------------------------------------------------------------------------- manifests


def unique_name(prefix: str) -> str:
    """``prefix-xxxxxxxx``: a fresh object name per test on the shared API server."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def model_annotations(name: str, **overrides: str) -> dict[str, str]:
    """Every required annotation, well formed and approved."""
    ann = {
        f"{PREFIX}model-name": name,
        f"{PREFIX}model-version": "1.4.2",
        f"{PREFIX}owner": "fraud-ml@example.com",
        f"{PREFIX}training-date": "2025-09-14",
        f"{PREFIX}training-data": "s3://ml-datasets/fraud/2025-09/train.parquet",
        f"{PREFIX}compliance-status": "approved",
        f"{PREFIX}risk-tier": "limited",
    }
    for key, value in overrides.items():
        ann[f"{PREFIX}{key.replace('_', '-')}"] = value
    return ann


def _pod_template(app: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "server", "image": image}]},
    }


def deployment(
    name: str,
    namespace: str,
    annotations: dict[str, str] | None = None,
    *,
    model: bool = True,
    image: str = "registry.example.com/ml/fraud-detector:1.4.2",
) -> dict[str, Any]:
    labels = {"app": name}
    if model:
        labels[f"{PREFIX}model"] = "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations or {},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(name, image),
        },
    }


def statefulset(name: str, namespace: str, annotations: dict[str, str]) -> dict[str, Any]:
    obj = deployment(name, namespace, annotations)
    obj["kind"] = "StatefulSet"
    obj["spec"]["serviceName"] = name
    return obj


def cronjob(name: str, namespace: str, annotations: dict[str, str]) -> dict[str, Any]:
    template = _pod_template(name, "registry.example.com/ml/batch-scorer:2.0.0")
    template["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {f"{PREFIX}model": "true"},
            "annotations": annotations,
        },
        "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}},
    }


# --------------------------------------------------------------------------- the webhook


@dataclass
class WebhookTLS:
    ca: CertificateAuthority
    cert: Path
    key: Path

    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.pem()).decode("ascii")


@pytest.fixture(scope="session")
def webhook_tls(tmp_path_factory: pytest.TempPathFactory) -> WebhookTLS:
    d = tmp_path_factory.mktemp("webhook-pki")
    ca = CertificateAuthority.create(d, "modelgate-e2e-webhook-ca")
    pair = ca.issue(d, "webhook", "127.0.0.1", hosts=["127.0.0.1", "localhost"])
    return WebhookTLS(ca=ca, cert=pair.cert, key=pair.key)


class Webhook:
    """``modelgate serve`` on 127.0.0.1 (its own process group, stopped by its pid)."""

    def __init__(self, tls: WebhookTLS, env: dict[str, str], workdir: Path) -> None:
        self.tls = tls
        self.env = env
        self.workdir = workdir
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = workdir / f"webhook-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        argv = [
            MODELGATE,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--tls-cert",
            str(self.tls.cert),
            "--tls-key",
            str(self.tls.key),
            "--workers",
            "1",
        ]
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"modelgate serve exited {self._proc.returncode}:\n{self.tail()}"
                )
            try:
                r = requests.get(f"{self.url}/readyz", verify=str(self.tls.ca.cert), timeout=3)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code} {r.text[:300]}"
            except requests.RequestException as e:
                last = str(e)
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"modelgate serve not ready in {timeout}s ({last}):\n{self.tail()}")

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Inventory:
    """The webhook's database, read through the `modelgate` CLI as a user would."""

    url: str

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MODELGATE_DATABASE_URL": self.url}
        return subprocess.run(
            [MODELGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def model_names(self) -> set[str]:
        proc = self._cli("models", "list", "--output", "json")
        assert proc.returncode == 0, proc.stderr
        return {row["name"] for row in json.loads(proc.stdout)}

    def deployments(self, model: str) -> list[dict[str, Any]]:
        """Every recorded deployment of any version of ``model`` ([] when unknown)."""
        proc = self._cli("models", "show", model, "--output", "json")
        if proc.returncode != 0:
            return []
        detail = json.loads(proc.stdout)
        return [d for v in detail["versions"] for d in v["deployments"]]

    def wait_for_deployment(self, model: str, kind: str, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in self.deployments(model):
                if d["kind"] == kind and d["name"] == name:
                    assert d["cluster"] == CLUSTER_NAME
                    return
            time.sleep(0.5)
        raise AssertionError(f"{kind}/{name} of model {model} not recorded in {timeout}s")


@pytest.fixture(scope="module")
def inventory(postgres_server: PostgresServer) -> Iterator[Inventory]:
    name = postgres_server.create_database()
    inv = Inventory(url=postgres_server.url(name))
    proc = inv._cli("db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    yield inv
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def policy_mount(tmp_path_factory: pytest.TempPathFactory) -> KubeletMount:
    """The chart's policy ConfigMap, laid out as the kubelet mounts it in the webhook pods."""
    mount = KubeletMount(tmp_path_factory.mktemp("policies"))
    files, _ = chart_policy_files()
    mount.write(files)
    return mount


def webhook_env(inventory: Inventory, policy_mount: KubeletMount) -> dict[str, str]:
    return {
        **os.environ,
        "MODELGATE_DATABASE_URL": inventory.url,
        "MODELGATE_POLICY_DIR": str(policy_mount.root),
        "MODELGATE_CLUSTER_NAME": CLUSTER_NAME,
        "MODELGATE_FAILURE_MODE": "closed",
        "MODELGATE_POLICY_RELOAD_SECONDS": "0.5",
        # these tests judge the annotations; recorded sign-off: tests/e2e/test_signoff.py
        "MODELGATE_APPROVAL_SOURCE": "annotation",
    }


# --------------------------------------------------------------------------- registration


def render_webhook_configuration(
    url: str, ca_bundle: str, name: str, failure_policy: str = "Fail"
) -> dict[str, Any]:
    """The chart's ValidatingWebhookConfiguration, pointed at a local URL."""
    out = helm(
        "template",
        "modelgate",
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--show-only",
        "templates/validatingwebhookconfiguration.yaml",
        "--set",
        f"webhook.url={url}",
        "--set",
        f"webhook.name={name}",
        "--set",
        f"webhook.failurePolicy={failure_policy}",
        "--set",
        "webhook.timeoutSeconds=10",
        "--set",
        "tls.mode=existingSecret",
        "--set",
        "tls.existingSecret.name=unused-in-url-mode",
        "--set",
        f"tls.existingSecret.caBundle={ca_bundle}",
        "--set",
        "database.existingSecret=unused-in-e2e",
    ).stdout
    doc: dict[str, Any] = yaml.safe_load(out)
    return doc


def wait_until(
    check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.5, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


def apply_result(
    cluster: Cluster, obj: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    """kubectl apply of one object, never raising: the test inspects exit code and output.
    The object is labelled so ``cleanup`` can remove it from the shared cluster."""
    labelled = copy.deepcopy(obj)
    labelled["metadata"].setdefault("labels", {})[E2E_LABEL] = "true"
    return cluster.kubectl(
        "apply", "-f", "-", *args, input=yaml.safe_dump(labelled, sort_keys=False), check=False
    )


E2E_LABEL = "e2e.modelgate.test/created"
E2E_KINDS = (
    "deployments.apps,statefulsets.apps,cronjobs.batch,configmaps,services,secrets,"
    "inferenceservices.serving.kserve.io,seldondeployments.machinelearning.seldon.io"
)


def cleanup(cluster: Cluster, kinds: str = E2E_KINDS) -> None:
    """Delete what the e2e tests created (the session cluster is shared with other suites;
    namespaces stay: without a controller-manager nothing would finalize their deletion)."""
    cluster.kubectl(
        "delete", kinds, "-A", "-l", f"{E2E_LABEL}=true", "--ignore-not-found", "--wait=false"
    )


def ensure_namespace(cluster: Cluster, name: str, labels: dict[str, str] | None = None) -> str:
    try:
        cluster.create_namespace(name, labels)
    except KubectlError as e:  # pragma: no cover - reported with kubectl's message
        raise AssertionError(str(e)) from e
    return name
