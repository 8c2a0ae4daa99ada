"""The discovery seam: a :class:`DiscoverySource` lists workloads of one cluster or cloud
account, and a registry maps a source kind (``kubernetes``, ``manifests``, ``sagemaker``, ...)
to a factory, so new sources (Vertex AI, Azure ML) plug in without touching the scanner.

A source that cannot be reached raises :class:`SourceUnreachable` from ``discover()`` (at the
start or midway); the scanner records it and carries on with the next source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

from modelgate.workload import Workload


class DiscoveryError(Exception):
    """Base of the discovery errors."""


class SourceUnreachable(DiscoveryError):
    """A cluster or cloud account could not be listed (network, credentials, bad config)."""


class SourceConfigError(DiscoveryError, ValueError):
    """A source was configured with options it cannot use (unknown kind, missing dir, ...)."""


class ImageStatus(TypedDict):
    """One running container image as reported by pod statuses."""

    container: str
    image: str
    image_id: str  # "docker-pullable://repo@sha256:..." or "" when not yet pulled
    digest: str  # "sha256:..." or ""


class RuntimeMetadata(TypedDict):
    """What a workload looks like at runtime (all optional: sources fill what they know)."""

    desired_replicas: int | None
    ready_replicas: int | None
    images: list[str]
    image_statuses: list[ImageStatus]
    resources: dict[str, dict[str, str]]  # {"requests": {...}, "limits": {...}} summed
    gpus: int
    created: str | None  # RFC 3339
    usage: dict[str, str] | None  # {"cpu": "250m", "memory": "512Mi"} from metrics.k8s.io
    restarts: int | None  # container restarts summed over the pods seen; None: no pod status


def empty_runtime() -> RuntimeMetadata:
    return RuntimeMetadata(
        desired_replicas=None,
        ready_replicas=None,
        images=[],
        image_statuses=[],
        resources={},
        gpus=0,
        created=None,
        usage=None,
        restarts=None,
    )


@dataclass
class DiscoveredWorkload:
    """One workload seen by a source."""

    cluster: str
    source: str  # the source's name (e.g. "kubernetes:prod" / "manifests:/srv/snap/prod")
    obj: Mapping[str, Any]  # the raw object (for policy evaluation)
    workload: Workload
    runtime: RuntimeMetadata = field(default_factory=empty_runtime)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (
            self.cluster,
            self.workload["namespace"],
            self.workload["kind"],
            self.workload["name"],
        )


@runtime_checkable
class DiscoverySource(Protocol):
    """Lists the workloads of one cluster / cloud account."""

    #: display name of the source, unique within a scan
    name: str
    #: the cluster name findings are recorded under
    cluster: str
    #: source kind, as registered ("kubernetes", "manifests", "sagemaker", ...)
    kind: str
    #: informational notes gathered while discovering (e.g. "KServe CRD not installed")
    notes: list[str]
    #: kinds the source could not list (e.g. forbidden): their absence proves nothing, so
    #: the scan never retires nor resolves anything of these kinds
    skipped_kinds: set[str]

    def discover(self) -> Iterator[DiscoveredWorkload]:
        """Yield workloads one at a time; raise :class:`SourceUnreachable` when listing fails."""
        ...


SourceFactory = Callable[[Mapping[str, Any]], Iterable[DiscoverySource]]

_REGISTRY: dict[str, SourceFactory] = {}


def register_source(kind: str, factory: SourceFactory, *, replace: bool = False) -> None:
    """Register ``factory`` for sources of ``kind``. It receives the options mapping and
    returns the sources (one per cluster/account) they describe."""
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise SourceConfigError(f"invalid source kind {kind!r}")
    if kind in _REGISTRY and not replace:
        raise SourceConfigError(f"source kind {kind!r} is already registered")
    _REGISTRY[kind] = factory


def registered_kinds() -> list[str]:
    _load_builtin_sources()
    return sorted(_REGISTRY)


def create_sources(kind: str, options: Mapping[str, Any]) -> list[DiscoverySource]:
    """Sources of ``kind`` for ``options`` (raises :class:`SourceConfigError`)."""
    _load_builtin_sources()
    try:
        factory = _REGISTRY[kind]
    except KeyError as e:
        raise SourceConfigError(
            f"unknown source kind {kind!r} (known: {', '.join(sorted(_REGISTRY))})"
        ) from e
    return list(factory(options))


_BUILTINS_LOADED = False
#: entry-point group for discovery plugins (e.g. Vertex AI, Azure ML): each entry point is a
#: callable that calls :func:`register_source`
ENTRY_POINT_GROUP = "modelgate.discovery_sources"


def _load_builtin_sources() -> None:
    """Import the built-in source modules (they register themselves)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import importlib

    for module in ("manifests", "kubernetes", "sagemaker"):
        importlib.import_module(f"auditor.discovery.{module}")
    # third-party sources: an entry point in this group whose object is called to register
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()()
        except Exception as e:  # a broken plugin must not break the built-in sources
            import logging

            logging.getLogger(__name__).warning("discovery plugin %s failed to load: %s", ep, e)


def check_unique_clusters(sources: Iterable[DiscoverySource]) -> None:
    """Raise :class:`SourceConfigError` when two sources claim the same cluster: each source
    proves what is no longer running in its cluster, so two partial views of one cluster
    would report each other's workloads as retired."""
    by_cluster: dict[str, list[str]] = {}
    for source in sources:
        by_cluster.setdefault(source.cluster, []).append(source.name)
    clashes = {c: names for c, names in by_cluster.items() if len(names) > 1}
    if clashes:
        detail = "; ".join(f"{c!r}: {', '.join(n)}" for c, n in sorted(clashes.items()))
        raise SourceConfigError(
            f"several sources scan the same cluster ({detail}); each cluster needs exactly one "
            "source (rename a --manifests directory or pick one of the contexts)"
        )


def parse_source_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``KIND[:key=value,key=value]`` (the ``--source`` option) -> kind and options."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if not kind:
        raise SourceConfigError(f"--source {spec!r}: expected KIND[:key=value,...]")
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise SourceConfigError(f"--source {spec!r}: {part!r} is not key=value")
        options[key.strip()] = value.strip()
    return kind, options
