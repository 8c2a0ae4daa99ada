"""Discovery sources: Kubernetes clusters, manifest snapshots, cloud ML services."""

from auditor.discovery.base import (
    DiscoveredWorkload,
    DiscoveryError,
    DiscoverySource,
    RuntimeMetadata,
    SourceConfigError,
    SourceUnreachable,
    check_unique_clusters,
    create_sources,
    parse_source_spec,
    register_source,
    registered_kinds,
)

__all__ = [
    "DiscoveredWorkload",
    "DiscoveryError",
    "DiscoverySource",
    "RuntimeMetadata",
    "SourceConfigError",
    "SourceUnreachable",
    "check_unique_clusters",
    "create_sources",
    "parse_source_spec",
    "register_source",
    "registered_kinds",
]
