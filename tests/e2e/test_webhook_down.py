"""What the API server does when modelgate's webhook is down: failurePolicy Fail refuses what
the webhook's rules match (with the API server's own error), Ignore admits it unchecked; kinds
outside the rules and excluded namespaces are unaffected either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.charts.mount import KubeletMount
from tests.e2e.support import (
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

pytestmark = pytest.mark.e2e

VWC_NAME = "modelgate-e2e-down"
NS = "ml-outage"


def _non_model_kinds(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": unique_name("cfg"), "namespace": namespace},
            "data": {"k": "v"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": unique_name("svc"), "namespace": namespace},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": unique_name("sec"), "namespace": namespace},
            "stringData": {"k": "v"},
        },
    ]


@pytest.fixture(scope="module")
def stopped(
    kube_cluster: Cluster,
    webhook_tls: WebhookTLS,
    inventory: Inventory,
    policy_mount: KubeletMount,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, Webhook]]:
    """A webhook that worked (proved by a refusal), then was stopped."""
    c = kube_cluster
    ensure_namespace(c, NS)
    ensure_namespace(c, RELEASE_NAMESPACE)
    hook = Webhook(webhook_tls, webhook_env(inventory, policy_mount), tmp_path_factory.mktemp("wh"))
    hook.start()
    try:
        c.apply(render_webhook_configuration(hook.url, webhook_tls.ca_bundle(), VWC_NAME, "Fail"))
        bare = deployment(unique_name("probe"), NS, {})

        def enforced() -> bool:
            r = apply_result(c, bare, "--dry-run=server")
            return r.returncode != 0 and "denied the request" in r.stderr

        wait_until(enforced, timeout=60, what="the webhook configuration to take effect")
        hook.stop()
        yield c, hook
    finally:
        hook.stop()
        c.kubectl("delete", "validatingwebhookconfiguration", VWC_NAME, "--ignore-not-found")
        cleanup(c, "deployments.apps,configmaps,services,secrets")


def _set_failure_policy(c: Cluster, hook: Webhook, tls: WebhookTLS, policy: str) -> None:
    c.apply(render_webhook_configuration(hook.url, tls.ca_bundle(), VWC_NAME, policy))
    stored = c.get_json(f"validatingwebhookconfiguration/{VWC_NAME}")
    assert {w["failurePolicy"] for w in stored["webhooks"]} == {policy}
    # the API server's webhook configuration cache catches up asynchronously
    probe = deployment(unique_name("probe"), NS, {})

    def effective() -> bool:
        r = apply_result(c, probe, "--dry-run=server")
        if policy == "Ignore":
            return r.returncode == 0
        return "failed calling webhook" in r.stderr

    wait_until(effective, timeout=30, what=f"failurePolicy {policy} to take effect")


def test_fail_policy_refuses_model_workloads_with_the_api_servers_error(
    stopped: tuple[Cluster, Webhook], webhook_tls: WebhookTLS
) -> None:
    c, hook = stopped
    _set_failure_policy(c, hook, webhook_tls, "Fail")
    name = unique_name("model")
    r = apply_result(c, deployment(name, NS, model_annotations(name)))
    assert r.returncode != 0
    assert 'failed calling webhook "validate.modelgate.dev"' in r.stderr
    assert hook.url in r.stderr or "connection refused" in r.stderr
    assert c.kubectl("get", "deployment", name, "-n", NS, check=False).returncode != 0


def test_fail_policy_leaves_other_kinds_and_excluded_namespaces_alone(
    stopped: tuple[Cluster, Webhook], webhook_tls: WebhookTLS
) -> None:
    c, hook = stopped
    _set_failure_policy(c, hook, webhook_tls, "Fail")
    for obj in _non_model_kinds(NS):
        r = apply_result(c, obj)
        assert r.returncode == 0, (obj["kind"], r.stderr)
    # modelgate's own namespace stays writable, so a broken webhook can always be repaired
    for ns in (RELEASE_NAMESPACE, "kube-system"):
        name = unique_name("repair")
        r = apply_result(c, deployment(name, ns, model_annotations(name)))
        assert r.returncode == 0, r.stderr


def test_fail_policy_also_holds_back_plain_deployments_in_checked_namespaces(
    stopped: tuple[Cluster, Webhook], webhook_tls: WebhookTLS
) -> None:
    """Documented trade-off (chart README, `webhook.failurePolicy`): the rules match the kind,
    and only the webhook can tell a model from nginx."""
    c, hook = stopped
    _set_failure_policy(c, hook, webhook_tls, "Fail")
    web = deployment(unique_name("nginx"), NS, None, model=False, image="nginx:1.27.3")
    r = apply_result(c, web)
    assert r.returncode != 0 and "failed calling webhook" in r.stderr


def test_ignore_policy_admits_model_workloads_while_the_webhook_is_down(
    stopped: tuple[Cluster, Webhook], webhook_tls: WebhookTLS
) -> None:
    c, hook = stopped
    _set_failure_policy(c, hook, webhook_tls, "Ignore")
    name = unique_name("model")
    obj = deployment(name, NS, {"modelgate.dev/model-name": name})  # would be denied if checked
    r = apply_result(c, obj)
    assert r.returncode == 0, r.stderr
    assert c.get_json(f"deployment/{name}", "-n", NS)["metadata"]["name"] == name
    for other in _non_model_kinds(NS):
        assert apply_result(c, other).returncode == 0
