"""Template logic of charts/modelgate, asserted on `helm template` output."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from modelgate.inventory import chain
from tests.charts.helm import CHART, CI_VALUES, NAMESPACE, by_kind, one, render, render_error

WORKLOAD_KINDS = {
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "pods"),
    ("serving.kserve.io", "inferenceservices"),
    ("machinelearning.seldon.io", "seldondeployments"),
}


def _ci(name: str) -> Any:
    return CHART / "ci" / f"{name}-values.yaml"


def _webhooks(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    vwc = one(objs, "ValidatingWebhookConfiguration")
    return {w["name"]: w for w in vwc["webhooks"]}


def _ns_expr(hook: dict[str, Any], key: str) -> dict[str, Any]:
    exprs = hook["namespaceSelector"]["matchExpressions"]
    matches = [e for e in exprs if e["key"] == key]
    assert len(matches) == 1, exprs
    match: dict[str, Any] = matches[0]
    return match


def _container(objs: list[dict[str, Any]], name: str = "webhook") -> dict[str, Any]:
    dep = one(objs, "Deployment")
    containers: dict[str, dict[str, Any]] = {
        c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]
    }
    return containers[name]


def _tls_secrets(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chart's Secrets of type kubernetes.io/tls (the log signing key is another one)."""
    return [o for o in by_kind(objs, "Secret") if o.get("type") == "kubernetes.io/tls"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --------------------------------------------------------------------------- webhook config


def test_two_webhooks_split_enforcing_and_warn_namespaces() -> None:
    hooks = _webhooks(render())
    assert set(hooks) == {"validate.modelgate.dev", "warn.validate.modelgate.dev"}
    enforce, warn = hooks["validate.modelgate.dev"], hooks["warn.validate.modelgate.dev"]
    assert enforce["clientConfig"]["service"]["path"] == "/validate"
    assert warn["clientConfig"]["service"]["path"] == "/validate/warn"
    # label absent / enforce -> enforcing hook; warn -> warn hook; off -> neither
    e = _ns_expr(enforce, "modelgate.dev/enforcement")
    assert e["operator"] == "NotIn" and set(e["values"]) == {"warn", "off"}
    w = _ns_expr(warn, "modelgate.dev/enforcement")
    assert w["operator"] == "In" and w["values"] == ["warn"]


def test_every_webhook_covers_the_model_kinds_on_create_and_update() -> None:
    for hook in _webhooks(render()).values():
        covered = set()
        for rule in hook["rules"]:
            assert rule["operations"] == ["CREATE", "UPDATE"]
            assert rule["scope"] == "Namespaced"
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    covered.add((group, res))
        assert covered == WORKLOAD_KINDS
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["admissionReviewVersions"] == ["v1"]


def test_pods_can_be_left_to_their_controllers() -> None:
    for hook in _webhooks(render(sets={"webhook.validatePods": "false"})).values():
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert "pods" not in resources and "deployments" in resources


def test_namespace_exclusions_cover_kube_system_release_namespace_and_user_list() -> None:
    objs = render(set_json={"webhook.excludeNamespaces": ["monitoring", "istio-system"]})
    for hook in _webhooks(objs).values():
        expr = _ns_expr(hook, "kubernetes.io/metadata.name")
        assert expr["operator"] == "NotIn"
        assert set(expr["values"]) == {"kube-system", NAMESPACE, "monitoring", "istio-system"}


def test_release_namespace_follows_the_install_namespace() -> None:
    hooks = _webhooks(render(namespace="governance"))
    for hook in hooks.values():
        assert "governance" in _ns_expr(hook, "kubernetes.io/metadata.name")["values"]
        assert hook["clientConfig"]["service"]["namespace"] == "governance"


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_failure_policy_and_timeout_come_from_values(policy: str) -> None:
    objs = render(sets={"webhook.failurePolicy": policy, "webhook.timeoutSeconds": "12"})
    for hook in _webhooks(objs).values():
        assert hook["failurePolicy"] == policy
        assert hook["timeoutSeconds"] == 12


def test_default_failure_policy_is_fail() -> None:
    assert {h["failurePolicy"] for h in _webhooks(render()).values()} == {"Fail"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"webhook.failurePolicy": "Sometimes"}, "webhook.failurePolicy must be Fail or Ignore"),
        ({"webhook.timeoutSeconds": "31"}, "webhook.timeoutSeconds must be between 1 and 30"),
        ({"webhook.timeoutSeconds": "0"}, "webhook.timeoutSeconds must be between 1 and 30"),
        ({"webhook.url": "http://127.0.0.1:9443"}, "webhook.url must start with https://"),
    ],
)
def test_bad_webhook_values_fail_with_a_clear_message(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets=sets)


def test_url_mode_points_both_webhooks_at_the_url_with_their_paths() -> None:
    objs = render(_ci("url"), base=False)
    hooks = _webhooks(objs)
    assert (
        hooks["validate.modelgate.dev"]["clientConfig"]["url"] == "https://127.0.0.1:9443/validate"
    )
    assert (
        hooks["warn.validate.modelgate.dev"]["clientConfig"]["url"]
        == "https://127.0.0.1:9443/validate/warn"
    )
    for hook in hooks.values():
        assert "service" not in hook["clientConfig"]
        assert hook["clientConfig"]["caBundle"]


def test_object_selector_is_passed_through() -> None:
    selector = {"matchLabels": {"modelgate.dev/model": "true"}}
    for hook in _webhooks(render(set_json={"webhook.objectSelector": selector})).values():
        assert hook["objectSelector"] == selector


# --------------------------------------------------------------------------- TLS modes


def test_generated_tls_secret_is_signed_by_the_ca_in_the_webhook_bundle() -> None:
    objs = render()
    secret = one(_tls_secrets(objs), "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    leaf.verify_directly_issued_by(ca)
    ca_key = ca.public_key()
    leaf_key = leaf.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey) and ca_key.key_size >= 2048
    assert isinstance(leaf_key, rsa.RSAPublicKey) and leaf_key.key_size >= 2048
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mg-modelgate.modelgate.svc" in sans.get_values_for_type(x509.DNSName)
    for hook in _webhooks(objs).values():
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    # the pods restart when the certificate changes
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/tls" in annotations
    assert not by_kind(objs, "Certificate") and not by_kind(objs, "Issuer")


# the ci files render the dashboard too: these tests look at the webhook's Deployment alone
NO_DASHBOARD = {"dashboard.enabled": "false"}


def test_cert_manager_mode_creates_issuer_and_certificate_and_injects_the_ca() -> None:
    objs = render(_ci("certmanager"), base=False, sets=NO_DASHBOARD)
    assert not _tls_secrets(objs)
    cert = one(objs, "Certificate")
    issuer = one(objs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert cert["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert "mg-modelgate.modelgate.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["privateKey"]["size"] >= 2048
    vwc = one(objs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{cert['metadata']['name']}"
    )
    for hook in vwc["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]
    dep = one(objs, "Deployment")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == cert["spec"]["secretName"]


def test_cert_manager_mode_can_use_an_existing_cluster_issuer() -> None:
    ref = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    objs = render(sets={"tls.mode": "certManager"}, set_json={"tls.certManager.issuerRef": ref})
    assert not by_kind(objs, "Issuer")
    assert one(objs, "Certificate")["spec"]["issuerRef"] == ref


def test_existing_secret_mode_uses_the_secret_and_the_given_ca_bundle() -> None:
    objs = render(_ci("existing-secret"), base=False, sets=NO_DASHBOARD)
    assert not _tls_secrets(objs) and not by_kind(objs, "Certificate")
    expected = yaml.safe_load((CHART / "ci" / "existing-secret-values.yaml").read_text())
    bundle = expected["tls"]["existingSecret"]["caBundle"]
    for hook in _webhooks(objs).values():
        assert hook["clientConfig"]["caBundle"] == bundle
    dep = one(objs, "Deployment")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "modelgate-serving-tls"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"tls.mode": "selfmade"}, "tls.mode must be one of certManager, generated"),
        ({"tls.mode": "existingSecret"}, "tls.mode=existingSecret needs tls.existingSecret.name"),
        (
            {"tls.mode": "existingSecret", "tls.existingSecret.name": "s"},
            "needs tls.existingSecret.caBundle",
        ),
        ({"tls.existingSecret.name": "s"}, "tls.existingSecret.name is set but tls.mode is"),
        (
            {"tls.mode": "certManager", "webhook.url": "https://10.0.0.5:9443"},
            "tls.mode=certManager cannot be combined with webhook.url",
        ),
        ({"tls.existingSecret.caBundle": "Zm9v"}, "caBundle is only used with tls.mode=existing"),
        (
            {"webhook.url": "https://modelgate.example.com:9443"},
            "tls.mode=generated cannot be combined with webhook.url",
        ),
    ],
)
def test_invalid_tls_combinations_fail_with_a_clear_message(
    sets: dict[str, str], message: str
) -> None:
    assert message in render_error(sets=sets)


# --------------------------------------------------------------------------- availability


def test_default_is_two_replicas_with_a_pdb_and_anti_affinity() -> None:
    objs = render()
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] >= 2
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_hard_anti_affinity_and_replica_count() -> None:
    objs = render(sets={"replicaCount": "4", "podAntiAffinity": "hard"})
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 4
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in anti


def test_pdb_can_be_disabled_for_a_single_replica() -> None:
    objs = render(sets={"replicaCount": "1", "podDisruptionBudget.enabled": "false"})
    assert not by_kind(objs, "PodDisruptionBudget")
    assert one(objs, "Deployment")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"replicaCount": "1"}, "podDisruptionBudget.enabled needs replicaCount >= 2"),
        ({"podDisruptionBudget.minAvailable": "2"}, "must be lower than replicaCount"),
        ({"podAntiAffinity": "maybe"}, "podAntiAffinity must be soft, hard or none"),
        ({"image.tag": "latest"}, "`latest` is not allowed"),
        ({"config.failureMode": "sideways"}, "config.failureMode must be closed or open"),
        (
            {"networkPolicy.restrictEgress": "true"},
            "networkPolicy.restrictEgress needs networkPolicy.egressTo",
        ),
    ],
)
def test_bad_availability_values_fail_with_a_clear_message(
    sets: dict[str, str], message: str
) -> None:
    assert message in render_error(sets=sets)


def test_a_database_is_required() -> None:
    """Without the bundled PostgreSQL, a database Secret or URL is required (said once)."""
    error = render_error(base=False, sets={"postgresql.enabled": "false"})
    assert "no database: set database.existingSecret" in error
    assert error.count("no database") == 1


# --------------------------------------------------------------------------- pod hardening


def test_webhook_pod_is_hardened_and_probed() -> None:
    objs = render()
    spec = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    c = _container(objs)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["args"][:1] == ["serve"] and "--tls-cert" in c["args"]
    assert c["image"].endswith(":0.1.0")


def test_every_pod_of_the_chart_runs_non_root_without_capabilities() -> None:
    objs = render(sets={"opa.enabled": "true"})
    pod_specs = [
        one(objs, "Deployment")["spec"]["template"]["spec"],
        one(objs, "Job")["spec"]["template"]["spec"],
        one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]
    for spec in pod_specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in [*spec["containers"], *spec.get("initContainers", [])]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert not c["image"].endswith(":latest")


def test_environment_carries_cluster_name_database_secret_and_policy_dir() -> None:
    objs = render(sets={"clusterName": "prod-eu-1", "config.failureMode": "open"})
    env = _env(_container(objs))
    assert env["MODELGATE_CLUSTER_NAME"] == "prod-eu-1"
    assert env["MODELGATE_DATABASE_URL"] == {
        "secretKeyRef": {"name": "modelgate-database", "key": "url"}
    }
    assert env["MODELGATE_POLICY_DIR"] == "/etc/modelgate/policies"
    assert env["MODELGATE_FAILURE_MODE"] == "open"
    # the OPA sidecar is the default engine (the fastest, see the README's figures)
    assert env["MODELGATE_POLICY_ENGINE"] == "opa"
    assert env["MODELGATE_POLICY_TIMEOUT_SECONDS"] == "2"
    embedded = _env(_container(render(sets={"opa.enabled": "false"})))
    assert embedded["MODELGATE_POLICY_ENGINE"] == "embedded"
    assert embedded["MODELGATE_EVALUATORS"] == "2"


def test_spool_volume_is_mounted_and_keeps_pods_ready_during_a_database_outage() -> None:
    objs = render()
    c = _container(objs)
    env = _env(c)
    assert env["MODELGATE_SPOOL_DIR"] == "/var/spool/modelgate"
    assert env["MODELGATE_READY_WITHOUT_DATABASE"] == "true"
    assert int(env["MODELGATE_SPOOL_MAX_BYTES"]) > 0
    assert {"name": "spool", "mountPath": "/var/spool/modelgate"} in c["volumeMounts"]
    volumes = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["spool"] == {"name": "spool", "emptyDir": {"sizeLimit": "512Mi"}}
    claimed = render(sets={"spool.existingClaim": "spool-rwx"})
    volumes = {
        v["name"]: v for v in one(claimed, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["spool"]["persistentVolumeClaim"] == {"claimName": "spool-rwx"}


def test_server_values_reach_the_serve_command() -> None:
    c = _container(
        render(sets={"server.workers": "3", "server.threads": "16", "server.maxPending": "64"})
    )
    args = c["args"]
    assert args[args.index("--workers") + 1] == "3"
    assert args[args.index("--threads") + 1] == "16"
    assert args[args.index("--max-pending") + 1] == "64"
    assert _env(c)["MODELGATE_READ_TIMEOUT_SECONDS"] == "10"


def test_mutual_tls_mounts_the_client_ca_and_moves_probes_to_the_probe_port() -> None:
    objs = render(sets={"webhook.clientAuth.enabled": "true", "webhook.clientAuth.caSecret": "ca"})
    c = _container(objs)
    args = c["args"]
    assert args[args.index("--client-ca") + 1] == "/etc/modelgate/client-ca/ca.crt"
    assert args[args.index("--probe-port") + 1] == "8080"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probe", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probe", "scheme": "HTTP"}
    assert {"name": "probe", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    volumes = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["client-ca"]["secret"]["secretName"] == "ca"
    assert "needs webhook.clientAuth.caSecret" in render_error(
        sets={"webhook.clientAuth.enabled": "true"}
    )


def test_autoscaling_adds_a_cpu_hpa_and_leaves_the_replica_count_to_it() -> None:
    objs = render(sets={"autoscaling.enabled": "true", "autoscaling.maxReplicas": "9"})
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 9
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(objs, "Deployment")["metadata"]["name"]
    assert "replicas" not in one(objs, "Deployment")["spec"]
    assert not by_kind(render(), "HorizontalPodAutoscaler")
    assert "autoscaling.minReplicas must not exceed" in render_error(
        sets={
            "autoscaling.enabled": "true",
            "autoscaling.minReplicas": "5",
            "autoscaling.maxReplicas": "3",
        }
    )


def test_policy_timeout_must_leave_the_webhook_time_to_answer() -> None:
    message = render_error(sets={"config.policyTimeoutSeconds": "5", "webhook.timeoutSeconds": "5"})
    assert "must be below webhook.timeoutSeconds" in message


# --------------------------------------------------------------------------- policies


def _policy_volume(objs: list[dict[str, Any]]) -> dict[str, Any]:
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == "policies")


def test_bundled_policies_are_mounted_in_their_folders() -> None:
    objs = render()
    cm = one(objs, "ConfigMap")
    vol = _policy_volume(objs)
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    paths = {i["path"]: i["key"] for i in vol["configMap"]["items"]}
    assert "modelgate/config/data.yaml" in paths
    assert "modelgate/admission/admission.rego" in paths
    assert not any(p.endswith("_test.rego") for p in paths)
    for path, key in paths.items():
        source = (CHART / "files" / "policies" / path).read_text(encoding="utf-8")
        assert cm["data"][key].rstrip("\n") == source.rstrip("\n")


def test_inline_policies_replace_the_bundle() -> None:
    rego = "package modelgate.admission\n\ndefault is_model := false\n"
    objs = render(
        sets={"policies.source": "inline"},
        set_json={"policies.inline": {"modelgate/admission/admission.rego": rego}},
    )
    cm = one(objs, "ConfigMap")
    assert list(cm["data"]) == ["modelgate__admission__admission.rego"]
    assert cm["data"]["modelgate__admission__admission.rego"].rstrip() == rego.rstrip()
    items = _policy_volume(objs)["configMap"]["items"]
    assert items == [
        {
            "key": "modelgate__admission__admission.rego",
            "path": "modelgate/admission/admission.rego",
        }
    ]


def test_existing_policy_configmap_is_mounted_and_none_is_created() -> None:
    objs = render(_ci("existing-secret"), base=False, sets=NO_DASHBOARD)
    assert not by_kind(objs, "ConfigMap")
    vol = _policy_volume(objs)
    assert vol["configMap"]["name"] == "my-modelgate-policies"
    assert vol["configMap"]["items"][0]["path"] == "modelgate/admission/admission.rego"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"policies.source": "git"}, "policies.source must be bundled, inline or existing"),
        ({"policies.source": "inline"}, "policies.source=inline needs policies.inline"),
        ({"policies.source": "existingConfigMap"}, "needs policies.existingConfigMap.name"),
    ],
)
def test_bad_policy_values_fail_with_a_clear_message(sets: dict[str, str], message: str) -> None:
    assert message in render_error(sets=sets)


def test_opa_sidecar_mode_switches_the_engine_to_an_empty_loopback_opa() -> None:
    objs = render(_ci("opa-sidecar"), base=False, sets=NO_DASHBOARD)
    webhook = _container(objs)
    env = _env(webhook)
    assert env["MODELGATE_POLICY_ENGINE"] == "opa"
    assert env["MODELGATE_OPA_URL"] == "http://127.0.0.1:8181"
    # the webhook reads the bundle and pushes it; OPA loads nothing from disk itself
    assert "policies" in {m["name"] for m in webhook["volumeMounts"]}
    opa = _container(objs, "opa")
    assert opa["args"][:2] == ["run", "--server"]
    assert "--addr=127.0.0.1:8181" in opa["args"]
    assert not [a for a in opa["args"] if not a.startswith("-") and a not in ("run",)]
    assert "volumeMounts" not in opa
    assert not opa["image"].endswith(":latest")
    assert opa["securityContext"]["readOnlyRootFilesystem"] is True


def _containers(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = one(objs, "Deployment")["spec"]["template"]["spec"]
    return [*spec["containers"], *spec.get("initContainers", [])]


def test_default_engine_is_the_opa_sidecar() -> None:
    objs = render()
    env = _env(_container(objs))
    assert env["MODELGATE_POLICY_ENGINE"] == "opa"
    assert env["MODELGATE_OPA_URL"] == "http://127.0.0.1:8181"
    assert [c["name"] for c in _containers(objs)] == ["webhook", "opa"]


@pytest.mark.parametrize("sidecar_values", [False, True], ids=["defaults", "opa-sidecar-ci"])
def test_opa_in_process_loads_opa_into_the_webhook_without_a_sidecar(
    sidecar_values: bool,
) -> None:
    files = [_ci("opa-sidecar")] if sidecar_values else []
    objs = render(*files, base=not sidecar_values, sets={**NO_DASHBOARD, "opa.inProcess": "true"})
    webhook = _container(objs)
    env = _env(webhook)
    assert env["MODELGATE_POLICY_ENGINE"] == "opa-inprocess"
    assert "MODELGATE_OPA_URL" not in env
    assert "MODELGATE_EVALUATORS" not in env  # rego-cpp's evaluator processes are not started
    # the library is in the image (Dockerfile): nothing to point at, nothing else to run
    assert "MODELGATE_OPA_LIBRARY" not in env
    containers = _containers(objs)
    assert [c["name"] for c in containers] == ["webhook"]
    assert not [c for c in containers if "opa" in c["name"] or "opa" in c["image"]]
    ports = {p["name"] for c in containers for p in c.get("ports", [])}
    assert "opa-diag" not in ports
    # the webhook still reads the mounted bundle itself
    assert "policies" in {m["name"] for m in webhook["volumeMounts"]}


def test_opa_in_process_is_ignored_without_opa() -> None:
    objs = render(sets={"opa.enabled": "false", "opa.inProcess": "true"})
    env = _env(_container(objs))
    assert env["MODELGATE_POLICY_ENGINE"] == "embedded"
    assert env["MODELGATE_EVALUATORS"] == "2"
    assert "MODELGATE_OPA_URL" not in env
    assert [c["name"] for c in _containers(objs)] == ["webhook"]


# --------------------------------------------------------------------------- jobs, RBAC, network


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook() -> None:
    job = one(render(), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["db", "upgrade"]
    assert _env(c)["MODELGATE_DATABASE_URL"]["secretKeyRef"]["name"] == "modelgate-database"
    # runs before the chart's ServiceAccount exists
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


def test_migrations_can_be_turned_off() -> None:
    assert not by_kind(render(sets={"migrations.enabled": "false"}), "Job")


def test_auditor_cronjob_uses_a_read_only_cluster_role() -> None:
    # (the sign-off ClusterRoles: tests/charts/test_signoff_values.py)
    objs = render(sets={"auditor.schedule": "*/30 * * * *", "rbac.roles": "false"})
    cron = one(objs, "CronJob")
    assert cron["spec"]["schedule"] == "*/30 * * * *"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:2] == ["audit", "--in-cluster"] and "--report" in args
    assert "serviceAccountName" in pod and pod.get("automountServiceAccountToken", True)
    role = one(objs, "ClusterRole")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    resources = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    # namespaces for their enforcement labels, pod metrics for the usage columns of the report
    assert resources == WORKLOAD_KINDS | {("", "namespaces"), ("metrics.k8s.io", "pods")}
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]


def test_auditor_can_be_turned_off() -> None:
    objs = render(sets={"auditor.enabled": "false", "rbac.roles": "false"})
    for kind in ("CronJob", "ClusterRole", "ClusterRoleBinding"):
        assert not by_kind(objs, kind)


def test_network_policy_admits_only_the_webhook_port_from_the_api_server_cidrs() -> None:
    objs = render()
    np = one(objs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert np["spec"]["ingress"] == [
        {
            "ports": [{"port": "https", "protocol": "TCP"}],
            "from": [
                {"ipBlock": {"cidr": "10.0.0.0/8"}},
                {"ipBlock": {"cidr": "172.16.0.0/12"}},
                {"ipBlock": {"cidr": "192.168.0.0/16"}},
            ],
        }
    ]
    narrowed = one(
        render(
            set_json={
                "networkPolicy.apiServerCIDRs": ["10.0.0.10/32"],
                "networkPolicy.apiServerExcept": ["10.0.0.11/32"],
            }
        ),
        "NetworkPolicy",
    )
    peers = narrowed["spec"]["ingress"][0]["from"]
    assert peers == [{"ipBlock": {"cidr": "10.0.0.10/32", "except": ["10.0.0.11/32"]}}]
    assert "an ingress rule without sources would admit any caller" in render_error(
        sets={"networkPolicy.apiServerCIDRs": "null"}
    )
    policies = by_kind(render(_ci("opa-sidecar"), base=False), "NetworkPolicy")
    egress = next(np for np in policies if np["metadata"]["name"] == "mg-modelgate")
    assert "Egress" in egress["spec"]["policyTypes"]
    assert any(p.get("port") == 53 for rule in egress["spec"]["egress"] for p in rule["ports"])


def test_one_kind_per_template_file() -> None:
    for template in (CHART / "templates").glob("*.yaml"):
        text = template.read_text(encoding="utf-8")
        kinds = [ln for ln in text.splitlines() if ln.startswith("kind:")]
        assert len(kinds) == 1, f"{template.name} declares {len(kinds)} kinds"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_without_latest_tags(values: Any) -> None:
    for obj in render(values, base=False):
        spec = obj.get("spec", {})
        for path in (("template",), ("jobTemplate", "spec", "template")):
            node: Any = spec
            for key in path:
                node = node.get(key, {}) if isinstance(node, dict) else {}
            for c in node.get("spec", {}).get("containers", []) if isinstance(node, dict) else []:
                assert ":" in c["image"] and not c["image"].endswith(":latest")


def test_extra_env_reaches_the_webhook_and_the_auditor() -> None:
    objs = render(set_json={"config.extraEnv": [{"name": "HTTPS_PROXY", "value": "http://p:3128"}]})
    assert _env(_container(objs))["HTTPS_PROXY"] == "http://p:3128"
    auditor = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert _env(auditor["containers"][0])["HTTPS_PROXY"] == "http://p:3128"


# --------------------------------------------------------------------------- log signing


def _auditor_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_the_auditor_signs_a_log_checkpoint_with_a_generated_ed25519_key(tmp_path: Path) -> None:
    objs = render()
    secret = next(
        o for o in by_kind(objs, "Secret") if o["metadata"]["name"].endswith("-log-signing")
    )
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pem = base64.b64decode(secret["data"]["signing-key.pem"])
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(pem)
    key = chain.load_private_key(key_file)  # what `modelgate log checkpoint` reads
    assert chain.fingerprint(key.public_key()).startswith("SHA256:")

    pod = _auditor_pod(objs)
    (init,) = pod["initContainers"]
    assert init["name"] == "log-checkpoint" and init["args"] == ["log", "checkpoint"]
    key_path = "/var/run/modelgate/log-signing/signing-key.pem"
    assert _env(init)["MODELGATE_LOG_SIGNING_KEY_FILE"] == key_path
    assert _env(pod["containers"][0])["MODELGATE_LOG_SIGNING_KEY_FILE"] == key_path
    assert "MODELGATE_DATABASE_URL" in _env(init)
    for c in (init, pod["containers"][0]):
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["log-signing"]["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "log-signing")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] == 0o440  # the pod's fsGroup reads it, no one else
    # only the auditor holds the key: the webhook never sees it
    webhook = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert "log-signing" not in {v["name"] for v in webhook["volumes"]}


def test_an_existing_signing_key_secret_can_be_used_instead() -> None:
    objs = render(
        sets={
            "auditor.logSigning.mode": "existingSecret",
            "auditor.logSigning.existingSecret.name": "audit-signing",
            "auditor.logSigning.secretKey": "ed25519.pem",
        }
    )
    assert not [
        o for o in by_kind(objs, "Secret") if o["metadata"]["name"].endswith("-log-signing")
    ]
    pod = _auditor_pod(objs)
    volume = next(v for v in pod["volumes"] if v["name"] == "log-signing")
    assert volume["secret"]["secretName"] == "audit-signing"
    assert volume["secret"]["items"] == [{"key": "ed25519.pem", "path": "ed25519.pem"}]
    assert _env(pod["initContainers"][0])["MODELGATE_LOG_SIGNING_KEY_FILE"].endswith("/ed25519.pem")


def test_log_signing_can_be_turned_off_and_bad_combinations_fail() -> None:
    pod = _auditor_pod(render(sets={"auditor.logSigning.enabled": "false"}))
    assert "initContainers" not in pod
    assert "MODELGATE_LOG_SIGNING_KEY_FILE" not in _env(pod["containers"][0])
    assert "existingSecret.name" in render_error(sets={"auditor.logSigning.mode": "existingSecret"})
    assert "must be generated or existingSecret" in render_error(
        sets={"auditor.logSigning.mode": "vault"}
    )
    assert "set auditor.logSigning.mode=existingSecret" in render_error(
        sets={"auditor.logSigning.existingSecret.name": "x"}
    )
