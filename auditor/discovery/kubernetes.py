"""Kubernetes clusters through the official ``kubernetes`` client (the only module of the
project that imports it).

One :class:`KubernetesSource` per kubeconfig context (or the in-cluster configuration). Every
supported kind is listed cluster-wide page by page (``limit``/``continue``) as raw JSON, so
memory stays bounded by the page size plus a compact per-workload index of pod facts (image
digests, usage). KServe and Seldon resources are listed only when their API groups are served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from auditor.discovery.base import (
    DiscoveredWorkload,
    DiscoverySource,
    ImageStatus,
    SourceConfigError,
    SourceUnreachable,
    register_source,
)
from auditor.discovery.runtime import (
    image_statuses_of_pod,
    restarts_of_pod,
    runtime_from_object,
)
from modelgate.quantity import format_quantity, parse_quantity
from modelgate.workload import SUPPORTED_KINDS, WorkloadError, extract_workload

DEFAULT_PAGE_SIZE = 250
#: kinds listed through their own API group only when the group is served
CRD_KINDS = {"InferenceService": "KServe", "SeldonDeployment": "Seldon"}
#: kinds whose objects own pods (directly or through a ReplicaSet / Job)
_OWNER_INDEX_KINDS = ("ReplicaSet", "Job")

OwnerKey = tuple[str, str, str]  # namespace, kind, name


def _plural(kind: str) -> str:
    return kind.lower() + "s"


def _controller(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return str(ref.get("kind") or ""), str(ref.get("name") or "")
    return None


class _PodFacts:
    """Compact per-controller facts gathered from pods (and pod metrics)."""

    __slots__ = ("cpu", "images", "memory", "restarts")

    def __init__(self) -> None:
        self.images: dict[tuple[str, str], ImageStatus] = {}
        self.cpu: Decimal | None = None
        self.memory: Decimal | None = None
        #: container restarts summed over the pods that report a status
        self.restarts: int | None = None


class KubernetesSource:
    """All supported workloads of one cluster."""

    kind = "kubernetes"

    def __init__(
        self,
        *,
        cluster: str,
        context: str | None = None,
        kubeconfig: str | None = None,
        in_cluster: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.context = context
        self.kubeconfig = kubeconfig
        self.in_cluster = in_cluster
        self.page_size = page_size
        self.timeout = timeout
        self.name = f"kubernetes:{cluster}"
        self.notes: list[str] = []
        #: kinds that could not be listed (forbidden...): the scan of those kinds is incomplete
        self.skipped_kinds: set[str] = set()
        self._api: k8s_client.ApiClient | None = None

    # ------------------------------------------------------------------ plumbing

    def _client(self) -> k8s_client.ApiClient:
        if self._api is not None:
            return self._api
        configuration = k8s_client.Configuration()
        try:
            if self.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                k8s_config.load_kube_config(
                    config_file=self.kubeconfig,
                    context=self.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError, TypeError) as e:
            raise SourceUnreachable(f"cannot load the configuration of {self.cluster}: {e}") from e
        configuration.retries = 1
        self._api = k8s_client.ApiClient(configuration)
        return self._api

    def _get(self, path: str, query: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        api = self._client()
        try:
            response = api.call_api(
                path,
                "GET",
                query_params=query or [],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=(min(self.timeout, 10.0), self.timeout),
            )
            raw = response[0].data
        except ApiException:
            raise
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise SourceUnreachable(f"cluster {self.cluster} is unreachable: {_short(e)}") from e
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise SourceUnreachable(f"cluster {self.cluster} answered {path} with non-JSON") from e
        if not isinstance(data, dict):
            raise SourceUnreachable(f"cluster {self.cluster} answered {path} with {type(data)}")
        return data

    def _list(self, path: str) -> Iterator[dict[str, Any]]:
        """Items of a list endpoint, page by page."""
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.page_size)]
            if token:
                query.append(("continue", token))
            try:
                page = self._get(path, query)
            except ApiException as e:
                if e.status == 410 and token:  # continue token expired: restart is the only way
                    raise SourceUnreachable(
                        f"cluster {self.cluster}: listing {path} expired mid-way; rerun the scan"
                    ) from e
                raise
            yield from (i for i in page.get("items") or [] if isinstance(i, dict))
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def _list_kind(self, kind: str, path: str) -> Iterator[dict[str, Any]]:
        """``_list`` for one kind; a kind the credentials may not list is noted and skipped
        (recorded in :attr:`skipped_kinds`) instead of failing the whole cluster."""
        try:
            yield from self._list(path)
        except ApiException as e:
            if e.status not in (401, 403, 404):
                raise
            self.skipped_kinds.add(kind)
            self.notes.append(
                f"{self.cluster}: cannot list {kind} (HTTP {e.status} {e.reason}); "
                f"{kind} workloads were not audited"
            )

    def _group_version(self, group: str) -> str | None:
        """The preferred version of an API group, or ``None`` when it is not served."""
        try:
            data = self._get(f"/apis/{group}")
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        preferred = data.get("preferredVersion") or {}
        version = preferred.get("version") if isinstance(preferred, Mapping) else None
        return str(version) if version else None

    def _path(self, kind: str, version: str | None = None) -> str:
        group = SUPPORTED_KINDS[kind]
        if not group:
            return f"/api/v1/{_plural(kind)}"
        return f"/apis/{group}/{version or 'v1'}/{_plural(kind)}"

    # ------------------------------------------------------------------ discovery

    def discover(self) -> Iterator[DiscoveredWorkload]:
        try:
            yield from self._discover()
        except ApiException as e:
            reason = f"HTTP {e.status} {e.reason}".strip()
            raise SourceUnreachable(f"cluster {self.cluster}: {reason}") from e

    def _discover(self) -> Iterator[DiscoveredWorkload]:
        self._get("/version")
        namespaces: dict[str, dict[str, str]] = {}
        try:
            for ns_obj in self._list("/api/v1/namespaces"):
                meta = ns_obj.get("metadata") or {}
                labels = meta.get("labels") or {}
                namespaces[str(meta.get("name"))] = {str(k): str(v) for k, v in labels.items()}
        except ApiException as e:
            if e.status not in (401, 403):
                raise
            self.notes.append(
                f"{self.cluster}: cannot list namespaces (HTTP {e.status}); namespace labels "
                "unknown, the default enforcement was assumed"
            )

        versions: dict[str, str] = {}
        for kind, product in CRD_KINDS.items():
            version = self._group_version(SUPPORTED_KINDS[kind])
            if version is None:
                self.notes.append(
                    f"{self.cluster}: {product} not installed "
                    f"({SUPPORTED_KINDS[kind]} not served); {kind} skipped"
                )
            else:
                versions[kind] = version

        owners: dict[OwnerKey, tuple[str, str]] = {}
        for kind in _OWNER_INDEX_KINDS:
            for obj in self._list_kind(kind, self._path(kind)):
                meta = obj.get("metadata") or {}
                ctl = _controller(meta)
                if ctl is not None:
                    owners[(str(meta.get("namespace")), kind, str(meta.get("name")))] = ctl

        usage = self._pod_usage()
        facts: dict[OwnerKey, _PodFacts] = {}
        for pod in self._list_kind("Pod", self._path("Pod")):
            pod.setdefault("kind", "Pod")
            pod.setdefault("apiVersion", "v1")
            meta = pod.get("metadata") or {}
            ns = str(meta.get("namespace") or "")
            ctl = _controller(meta)
            if ctl is None:
                found = self._workload(pod, namespaces)
                if found is not None:
                    pod_usage = usage.get((ns, str(meta.get("name"))))
                    if pod_usage:
                        found.runtime["usage"] = _usage_dict(*pod_usage)
                    yield found
                continue
            top = _top_owner(ns, ctl, owners)
            pod_facts = facts.setdefault(top, _PodFacts())
            for st in image_statuses_of_pod(pod):
                pod_facts.images.setdefault((st["container"], st["image_id"] or st["image"]), st)
            restarts = restarts_of_pod(pod)
            if restarts is not None:
                pod_facts.restarts = (pod_facts.restarts or 0) + restarts
            pod_usage = usage.get((ns, str(meta.get("name"))))
            if pod_usage:
                cpu, mem = pod_usage
                pod_facts.cpu = (pod_facts.cpu or Decimal(0)) + cpu
                pod_facts.memory = (pod_facts.memory or Decimal(0)) + mem
        del usage

        for kind in SUPPORTED_KINDS:
            if kind == "Pod":
                continue
            if kind in CRD_KINDS and kind not in versions:
                continue
            api_version = (
                f"{SUPPORTED_KINDS[kind]}/{versions.get(kind, 'v1')}"
                if SUPPORTED_KINDS[kind]
                else "v1"
            )
            for obj in self._list_kind(kind, self._path(kind, versions.get(kind))):
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", api_version)
                found = self._workload(obj, namespaces)
                if found is None:
                    continue
                entry = facts.get((found.workload["namespace"], kind, found.workload["name"]))
                if entry is not None:
                    found.runtime["image_statuses"] = list(entry.images.values())
                    found.runtime["restarts"] = entry.restarts
                    if entry.cpu is not None and entry.memory is not None:
                        found.runtime["usage"] = _usage_dict(entry.cpu, entry.memory)
                yield found

    def _workload(
        self, obj: dict[str, Any], namespaces: Mapping[str, dict[str, str]]
    ) -> DiscoveredWorkload | None:
        try:
            workload = extract_workload(obj)
        except WorkloadError as e:
            self.notes.append(f"{self.cluster}: skipped an object: {e}")
            return None
        if workload["controlled"]:
            return None
        runtime = runtime_from_object(obj, workload)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)  # bulky and irrelevant to the policy
        return DiscoveredWorkload(
            cluster=self.cluster,
            source=self.name,
            obj=obj,
            workload=workload,
            runtime=runtime,
            namespace_labels=dict(namespaces.get(workload["namespace"], {})),
        )

    def _pod_usage(self) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
        """CPU (cores) and memory (bytes) per pod from metrics.k8s.io, when served."""
        version = self._group_version("metrics.k8s.io")
        if version is None:
            self.notes.append(f"{self.cluster}: metrics.k8s.io not served; usage not collected")
            return {}
        out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        try:
            for pm in self._list(f"/apis/metrics.k8s.io/{version}/pods"):
                meta = pm.get("metadata") or {}
                cpu = Decimal(0)
                mem = Decimal(0)
                for c in pm.get("containers") or []:
                    u = c.get("usage") or {}
                    cpu += parse_quantity(u.get("cpu", 0)) or Decimal(0)
                    mem += parse_quantity(u.get("memory", 0)) or Decimal(0)
                out[(str(meta.get("namespace")), str(meta.get("name")))] = (cpu, mem)
        except ApiException as e:
            self.notes.append(f"{self.cluster}: pod metrics unavailable (HTTP {e.status})")
            return {}
        return out


def _usage_dict(cpu: Decimal, memory: Decimal) -> dict[str, str]:
    return {"cpu": format_quantity("cpu", cpu), "memory": format_quantity("memory", memory)}


def _top_owner(
    namespace: str, ctl: tuple[str, str], owners: Mapping[OwnerKey, tuple[str, str]]
) -> OwnerKey:
    kind, name = ctl
    seen = 0
    while (namespace, kind, name) in owners and seen < 5:
        kind, name = owners[(namespace, kind, name)]
        seen += 1
    return (namespace, kind, name)


def _short(error: BaseException) -> str:
    text = str(getattr(error, "reason", None) or error)
    return text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__


def kubeconfig_contexts(kubeconfig: str | None) -> tuple[list[str], str | None]:
    """Context names of a kubeconfig and its current context."""
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError) as e:
        where = kubeconfig or "the default kubeconfig"
        raise SourceConfigError(f"cannot read {where}: {e}") from e
    names = [str(c["name"]) for c in contexts or []]
    return names, (str(active["name"]) if active else None)


def _factory(options: Mapping[str, Any]) -> list[DiscoverySource]:
    kubeconfig = options.get("kubeconfig")
    if kubeconfig is not None:
        kubeconfig = str(kubeconfig)
        if not Path(kubeconfig).is_file():
            raise SourceConfigError(f"--kubeconfig {kubeconfig}: no such file")
    page_size = int(options.get("page_size") or DEFAULT_PAGE_SIZE)
    timeout = float(options.get("timeout") or 30.0)
    sources: list[DiscoverySource] = []
    if options.get("in_cluster"):
        sources.append(
            KubernetesSource(
                cluster=str(options.get("cluster_name") or "default"),
                in_cluster=True,
                page_size=page_size,
                timeout=timeout,
            )
        )
    wanted = [str(c) for c in options.get("contexts") or []]
    if wanted or options.get("all_contexts") or (kubeconfig and not options.get("in_cluster")):
        names, active = kubeconfig_contexts(kubeconfig)
        if options.get("all_contexts"):
            wanted = [*wanted, *[n for n in names if n not in wanted]]
        elif not wanted:
            if active is None:
                raise SourceConfigError("the kubeconfig has no current context: pass --context")
            wanted = [active]
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise SourceConfigError(
                f"unknown kubeconfig context(s): {', '.join(unknown)} "
                f"(known: {', '.join(names) or 'none'})"
            )
        for context in wanted:
            sources.append(
                KubernetesSource(
                    cluster=context,
                    context=context,
                    kubeconfig=kubeconfig,
                    page_size=page_size,
                    timeout=timeout,
                )
            )
    return sources


register_source("kubernetes", _factory)
