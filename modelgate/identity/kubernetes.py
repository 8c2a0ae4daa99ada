"""The identity code's Kubernetes backend: TokenReview (who holds a service-account or other
Kubernetes token), SubjectAccessReview (may they act on ``modelgate.dev`` virtual resources)
and the bearer token of a kubeconfig context (``modelgate approve --kube``).

This is the only module of ``modelgate`` that imports the ``kubernetes`` client (an optional
dependency: the ``auditor`` extra and the image carry it). Credentials come from
``MODELGATE_KUBE_CONFIG`` when set, else the pod's service account, else the default
kubeconfig. Decisions are cached for a few seconds so a page of API calls asks the API
server once; an API server that does not answer is :class:`IdentityUnavailable` (503),
never a crash.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from modelgate.identity.base import (
    API_GROUP,
    Identity,
    IdentityUnavailable,
    Permission,
    Role,
    Unauthenticated,
)

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError as e:  # pragma: no cover - the image and the test extras carry it
    raise ImportError(
        "MODELGATE_KUBE_AUTH / MODELGATE_KUBE_AUTHZ and --kube need the kubernetes client: "
        "pip install 'modelgate[auditor]'"
    ) from e

log = logging.getLogger("modelgate.identity")

CACHE_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 5.0


class KubeConfigError(ValueError):
    """A kubeconfig cannot be loaded, or gives no bearer token."""


def _load_kubeconfig(configuration: Any, kubeconfig: Path | None, context: str | None) -> None:
    try:
        k8s_config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError, TypeError) as e:
        raise KubeConfigError(f"cannot load the kubeconfig: {e}") from e


def _configuration(kubeconfig: Path | None) -> Any:
    """The pod's service account when running in a cluster (and no kubeconfig is named),
    else the kubeconfig."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return configuration
        except ConfigException:
            pass
    _load_kubeconfig(configuration, kubeconfig, None)
    return configuration


class _Client:
    """A lazily created API client (nothing connects until the first review)."""

    def __init__(self, kubeconfig: Path | None) -> None:
        self.kubeconfig = kubeconfig
        self._lock = threading.Lock()
        self._api: Any = None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._api is None:
                try:
                    configuration = _configuration(self.kubeconfig)
                except KubeConfigError as e:
                    raise IdentityUnavailable(str(e)) from e
                configuration.retries = 1
                self._api = k8s_client.ApiClient(configuration)
            api = self._api
        try:
            response = api.call_api(
                path,
                "POST",
                body=body,
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
                _preload_content=True,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except ApiException as e:
            raise IdentityUnavailable(
                f"the Kubernetes API server refused {path.rsplit('/', 1)[-1]}: "
                f"HTTP {e.status} {e.reason}"
            ) from e
        except Exception as e:  # urllib3 connection errors, timeouts
            raise IdentityUnavailable(
                f"the Kubernetes API server does not answer: {type(e).__name__}"
            ) from e
        if not isinstance(response, dict):
            raise IdentityUnavailable("the Kubernetes API server's answer is not an object")
        return response


class _Cache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or time.monotonic() - hit[0] > self.seconds:
                return None
            return hit[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (time.monotonic(), value)


class TokenReviewAuthenticator:
    """Kubernetes tokens (service accounts, ...) checked with a TokenReview."""

    name = "kubernetes"

    def __init__(self, kubeconfig: Path | None = None, audiences: list[str] | None = None) -> None:
        self._client = _Client(kubeconfig)
        self.audiences = audiences or []
        self._cache = _Cache(CACHE_SECONDS)

    def authenticate(self, token: str) -> Identity | None:
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            if isinstance(cached, Identity):
                return cached
            raise Unauthenticated(str(cached), final=False)
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        review = self._client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            reason = "the Kubernetes API server did not authenticate the token"
            if status.get("error"):
                reason += f" ({str(status['error'])[:200]})"
            self._cache.put(key, reason)
            raise Unauthenticated(reason, final=False)
        user = status.get("user") or {}
        identity = Identity(
            user=str(user.get("username") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            source=self.name,
        )
        if not identity.user:
            raise Unauthenticated("the TokenReview named no user", final=False)
        self._cache.put(key, identity)
        return identity


class SubjectAccessAuthorizer:
    """Permissions from RBAC: a SubjectAccessReview on ``modelgate.dev`` virtual resources."""

    name = "kubernetes"

    def __init__(self, kubeconfig: Path | None = None) -> None:
        self._client = _Client(kubeconfig)
        self._cache = _Cache(CACHE_SECONDS)

    def allowed(self, identity: Identity, permission: Permission, name: str = "") -> bool:
        key = (identity.user, identity.groups, permission, name)
        cached = self._cache.get(key)
        if cached is not None:
            return bool(cached)
        attributes: dict[str, Any] = {
            "group": API_GROUP,
            "resource": permission.resource,
            "verb": permission.verb,
        }
        if name:
            attributes["name"] = name
        review = self._client.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": identity.user,
                    "groups": list(identity.groups),
                    "resourceAttributes": attributes,
                },
            },
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._cache.put(key, allowed)
        return allowed

    def role_of(self, identity: Identity) -> Role | None:
        """The highest role whose every permission RBAC grants (asked per permission)."""
        best: Role | None = None
        for role in Role:
            needed = [p for p in Permission if p.role <= role]
            if all(self.allowed(identity, p) for p in needed):
                best = role
            else:
                break
        return best


def kubeconfig_token(kubeconfig: Path | None = None, context: str | None = None) -> str:
    """The bearer token the kubeconfig's (current) context authenticates with (a token,
    token file or exec plugin); :class:`KubeConfigError` when it has none (a client
    certificate cannot be forwarded)."""
    configuration = k8s_client.Configuration()
    _load_kubeconfig(configuration, kubeconfig, context)
    header = str((configuration.api_key or {}).get("authorization") or "")
    token = header.removeprefix("Bearer ").strip()
    if not token:
        raise KubeConfigError(
            "the kubeconfig context has no bearer token (a client certificate cannot be "
            "sent to the modelgate API): use a context with a token, or --token"
        )
    return token
