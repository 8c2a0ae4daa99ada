"""Enforcement end to end: the real kubectl, the real kube-apiserver, modelgate's webhook as a
process on loopback, registered through the chart's ValidatingWebhookConfiguration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.mount import KubeletMount
from tests.e2e.support import (
    PREFIX,
    RELEASE_NAMESPACE,
    REQUIRED,
    Inventory,
    Webhook,
    WebhookTLS,
    apply_result,
    cleanup,
    cronjob,
    deployment,
    ensure_namespace,
    model_annotations,
    render_webhook_configuration,
    statefulset,
    unique_name,
    wait_until,
    webhook_env,
)
from tests.fixtures.cluster import Cluster

pytestmark = pytest.mark.e2e

CRDS = Path(__file__).parent / "crds" / "kserve-seldon.yaml"
VWC_NAME = "modelgate-e2e"
ENFORCE_NS = "ml-enforce"
WARN_NS = "ml-warn"
OFF_NS = "ml-off"


@pytest.fixture(scope="module")
def webhook(
    webhook_tls: WebhookTLS,
    inventory: Inventory,
    policy_mount: KubeletMount,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    hook = Webhook(webhook_tls, webhook_env(inventory, policy_mount), tmp_path_factory.mktemp("wh"))
    hook.start()
    try:
        yield hook
    finally:
        hook.stop()


@pytest.fixture(scope="module")
def cluster(kube_cluster: Cluster, webhook: Webhook, webhook_tls: WebhookTLS) -> Iterator[Cluster]:
    """The test cluster with namespaces in every enforcement mode, the KServe/Seldon CRDs and
    the chart's webhook configuration (failurePolicy Fail) pointing at the local webhook."""
    c = kube_cluster
    ensure_namespace(c, RELEASE_NAMESPACE)
    ensure_namespace(c, ENFORCE_NS)
    ensure_namespace(c, WARN_NS, {"modelgate.dev/enforcement": "warn"})
    ensure_namespace(c, OFF_NS, {"modelgate.dev/enforcement": "off"})
    c.kubectl("apply", "-f", str(CRDS))
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
    c.apply(render_webhook_configuration(webhook.url, webhook_tls.ca_bundle(), VWC_NAME))

    # the API server picks the configuration up asynchronously: wait until it is enforced
    probe = deployment(unique_name("probe"), ENFORCE_NS, {})

    def enforced() -> bool:
        r = apply_result(c, probe, "--dry-run=server")
        return r.returncode != 0 and "modelgate" in r.stderr

    wait_until(enforced, timeout=60, what="the webhook configuration to take effect")
    try:
        yield c
    finally:
        c.kubectl("delete", "validatingwebhookconfiguration", VWC_NAME, "--ignore-not-found")
        cleanup(c)


def test_undocumented_model_deployment_is_refused_naming_missing_keys(cluster: Cluster) -> None:
    name = unique_name("churn")
    ann = {f"{PREFIX}model-name": name, f"{PREFIX}owner": "risk@example.com"}
    r = apply_result(cluster, deployment(name, ENFORCE_NS, ann))
    assert r.returncode != 0
    assert 'admission webhook "validate.modelgate.dev" denied the request' in r.stderr
    for key in REQUIRED:
        if f"{PREFIX}{key}" not in ann:
            assert f"{PREFIX}{key}" in r.stderr, (key, r.stderr)
    assert f'"{PREFIX}owner"' not in r.stderr
    assert cluster.kubectl("get", "deployment", name, "-n", ENFORCE_NS, check=False).returncode != 0


def test_compliant_deployment_statefulset_and_cronjob_are_created_and_recorded(
    cluster: Cluster, inventory: Inventory
) -> None:
    model = unique_name("fraud")
    objs = [
        deployment(f"{model}-dep", ENFORCE_NS, model_annotations(model)),
        statefulset(f"{model}-sts", ENFORCE_NS, model_annotations(model)),
        cronjob(f"{model}-cron", ENFORCE_NS, model_annotations(model)),
    ]
    for obj in objs:
        r = apply_result(cluster, obj)
        assert r.returncode == 0, r.stderr
        assert "created" in r.stdout
        got = cluster.get_json(f"{obj['kind']}/{obj['metadata']['name']}", "-n", ENFORCE_NS)
        assert got["metadata"]["annotations"][f"{PREFIX}model-name"] == model
    for obj in objs:
        inventory.wait_for_deployment(model, obj["kind"], obj["metadata"]["name"])
    assert model in inventory.model_names()


def test_server_dry_run_is_allowed_and_not_recorded(cluster: Cluster, inventory: Inventory) -> None:
    dry = unique_name("dry")
    r = apply_result(
        cluster, deployment(dry, ENFORCE_NS, model_annotations(dry)), "--dry-run=server"
    )
    assert r.returncode == 0, r.stderr
    assert "(server dry run)" in r.stdout
    assert cluster.kubectl("get", "deployment", dry, "-n", ENFORCE_NS, check=False).returncode
    # a dry run of a bad one is still judged
    bad = apply_result(
        cluster, deployment(unique_name("drybad"), ENFORCE_NS, {}), "--dry-run=server"
    )
    assert bad.returncode != 0 and "modelgate" in bad.stderr
    # barrier: a real admission made after the dry run is recorded...
    real = unique_name("real")
    assert (
        apply_result(cluster, deployment(real, ENFORCE_NS, model_annotations(real))).returncode == 0
    )
    inventory.wait_for_deployment(real, "Deployment", real)
    # ...while the dry-run model never is
    assert dry not in inventory.model_names()
    assert inventory.deployments(dry) == []


def _isvc(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": ENFORCE_NS, "annotations": annotations},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m/x"}}
        },
    }


def _sdep(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": ENFORCE_NS, "annotations": annotations},
        "spec": {
            "predictors": [
                {
                    "name": "default",
                    "replicas": 1,
                    "graph": {"name": "classifier", "implementation": "SKLEARN_SERVER"},
                }
            ]
        },
    }


def test_bare_inference_service_is_refused_and_documented_one_admitted(
    cluster: Cluster, inventory: Inventory
) -> None:
    bare = apply_result(cluster, _isvc(unique_name("isvc-bare"), {}))
    assert bare.returncode != 0
    assert "validate.modelgate.dev" in bare.stderr
    assert f"{PREFIX}model-name" in bare.stderr
    name = unique_name("isvc")
    ok = apply_result(cluster, _isvc(name, model_annotations(name)))
    assert ok.returncode == 0, ok.stderr
    assert (
        cluster.get_json(f"inferenceservice/{name}", "-n", ENFORCE_NS)["kind"] == "InferenceService"
    )
    inventory.wait_for_deployment(name, "InferenceService", name)


def test_bare_seldon_deployment_is_refused_and_documented_one_admitted(cluster: Cluster) -> None:
    bare = apply_result(cluster, _sdep(unique_name("sdep-bare"), {}))
    assert bare.returncode != 0
    assert f"{PREFIX}owner" in bare.stderr
    name = unique_name("sdep")
    ok = apply_result(cluster, _sdep(name, model_annotations(name)))
    assert ok.returncode == 0, ok.stderr


def test_warn_namespace_admits_and_kubectl_prints_modelgate_warnings(cluster: Cluster) -> None:
    name = unique_name("warned")
    r = apply_result(cluster, deployment(name, WARN_NS, {f"{PREFIX}model-name": name}))
    assert r.returncode == 0, r.stderr
    assert "created" in r.stdout
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning:")]
    assert warnings, r.stderr
    text = "\n".join(warnings)
    assert "modelgate" in text
    assert f"{PREFIX}owner" in text and f"{PREFIX}training-date" in text


@pytest.mark.parametrize("namespace", ["kube-system", RELEASE_NAMESPACE, OFF_NS])
def test_excluded_namespaces_are_never_sent_to_the_webhook(
    cluster: Cluster, inventory: Inventory, namespace: str
) -> None:
    # a model with an approved-looking name but missing every other field: the webhook would
    # refuse it (failurePolicy Fail), so admission without a warning proves it was not asked
    name = unique_name("unsent")
    obj = deployment(name, namespace, {f"{PREFIX}model-name": name})
    r = apply_result(cluster, obj)
    assert r.returncode == 0, r.stderr
    assert "Warning:" not in r.stderr
    # barrier, then: nothing about it reached the inventory
    real = unique_name("barrier")
    assert (
        apply_result(cluster, deployment(real, ENFORCE_NS, model_annotations(real))).returncode == 0
    )
    inventory.wait_for_deployment(real, "Deployment", real)
    assert name not in inventory.model_names()


def test_non_model_workloads_and_kinds_pass_untouched(cluster: Cluster) -> None:
    web = deployment(unique_name("nginx"), ENFORCE_NS, None, model=False, image="nginx:1.27.3")
    r = apply_result(cluster, web)
    assert r.returncode == 0, r.stderr
    assert "Warning:" not in r.stderr
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": unique_name("cfg"), "namespace": ENFORCE_NS},
        "data": {"a": "b"},
    }
    assert apply_result(cluster, cm).returncode == 0


def test_image_only_model_server_is_detected(cluster: Cluster) -> None:
    obj = deployment(
        unique_name("vllm"), ENFORCE_NS, {}, model=False, image="vllm/vllm-openai:v0.6.3"
    )
    r = apply_result(cluster, obj)
    assert r.returncode != 0
    assert "validate.modelgate.dev" in r.stderr


def test_jobs_a_cronjob_starts_are_not_judged_again(cluster: Cluster) -> None:
    """The CronJob controller copies only jobTemplate's metadata onto the Jobs it starts, so a
    CronJob documented on its own metadata starts Jobs that carry none of it. (No
    controller-manager runs here: the test creates the Job the way the controller would.)"""
    name = unique_name("nightly")
    cron = cronjob(name, ENFORCE_NS, model_annotations(name))
    template = cron["spec"]["jobTemplate"]["spec"]["template"]
    template["metadata"]["labels"][f"{PREFIX}model"] = "true"
    r = apply_result(cluster, cron)
    assert r.returncode == 0, r.stderr
    uid = cluster.get_json(f"cronjob/{name}", "-n", ENFORCE_NS)["metadata"]["uid"]
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-29100000", "namespace": ENFORCE_NS},
        "spec": {"template": template},
    }
    # the same Job created by hand is an undocumented model...
    bare = apply_result(cluster, job, "--dry-run=server")
    assert bare.returncode != 0 and f"{PREFIX}model-name" in bare.stderr
    # ...but created by its CronJob it was judged through the CronJob
    job["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": uid, "controller": True}
    ]
    try:
        r = apply_result(cluster, job)
        assert r.returncode == 0, r.stderr
        assert "Warning:" not in r.stderr
    finally:
        cluster.kubectl(
            "delete", "job", job["metadata"]["name"], "-n", ENFORCE_NS, "--ignore-not-found"
        )


def _admitted(cluster: Cluster, obj: dict[str, Any]) -> bool:
    return apply_result(cluster, obj, "--dry-run=server").returncode == 0


def _refused_for(cluster: Cluster, obj: dict[str, Any], text: str) -> bool:
    r = apply_result(cluster, obj, "--dry-run=server")
    return r.returncode != 0 and text in r.stderr


def _with_required(data_yaml: str, field: str) -> str:
    data = yaml.safe_load(data_yaml)
    assert field not in data["required_fields"]
    data["required_fields"] = [*data["required_fields"], field]
    return yaml.safe_dump(data, sort_keys=False)


def test_policy_edited_on_disk_changes_the_next_decision_without_restart(
    cluster: Cluster, policy_mount: KubeletMount, webhook: Webhook
) -> None:
    # the data file as the process sees it (through the ConfigMap-style symlinks), edited in place
    data_file = policy_mount.root / "modelgate" / "config" / "data.yaml"
    original = data_file.read_text(encoding="utf-8")
    name = unique_name("edit")
    obj = deployment(name, ENFORCE_NS, model_annotations(name))  # no modelgate.dev/source
    assert _admitted(cluster, obj)
    data_file.write_text(_with_required(original, "source"), encoding="utf-8")
    try:
        wait_until(
            lambda: _refused_for(cluster, obj, f"{PREFIX}source"),
            timeout=30,
            what="the edited policy to apply",
        )
    finally:
        data_file.write_text(original, encoding="utf-8")
    wait_until(lambda: _admitted(cluster, obj), timeout=30, what="the restored policy")
    assert webhook.running  # the same process served every decision


def test_configmap_update_swaps_the_policy_without_restart(
    cluster: Cluster, policy_mount: KubeletMount, webhook: Webhook
) -> None:
    """A `kubectl edit` of the chart's policy ConfigMap reaches the pods as an atomic swap of
    the mounted folder (new files, old ones removed); the webhook follows it."""
    original = dict(policy_mount.files)
    data_path = "modelgate/config/data.yaml"
    name = unique_name("swap")
    obj = deployment(name, ENFORCE_NS, model_annotations(name))  # no modelgate.dev/training-run
    assert _admitted(cluster, obj)
    policy_mount.write({**original, data_path: _with_required(original[data_path], "training-run")})
    try:
        wait_until(
            lambda: _refused_for(cluster, obj, f"{PREFIX}training-run"),
            timeout=30,
            what="the swapped ConfigMap to apply",
        )
    finally:
        policy_mount.write(original)
    wait_until(lambda: _admitted(cluster, obj), timeout=30, what="the restored ConfigMap")
    assert webhook.running
