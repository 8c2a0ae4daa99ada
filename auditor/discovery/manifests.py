"""Offline snapshots: ``--manifests DIR``; the directory name is the cluster name.

Every ``*.yaml``, ``*.yml`` and ``*.json`` file below the directory is read (multi-document
YAML, JSON objects or arrays, ``kind: List`` expanded) one document at a time, so large
snapshots stay in bounded memory. Namespace objects in the snapshot provide namespace labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from auditor.discovery.base import (
    DiscoveredWorkload,
    DiscoverySource,
    SourceConfigError,
    SourceUnreachable,
    register_source,
)
from auditor.discovery.runtime import runtime_from_object
from modelgate.workload import SUPPORTED_KINDS, WorkloadError, extract_workload

try:  # libyaml is much faster on large snapshots
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

SUFFIXES = (".yaml", ".yml", ".json")
_NAMESPACE_HINT = re.compile(r"""(^kind:\s*["']?Namespace\b|"kind"\s*:\s*"Namespace")""", re.M)


def iter_documents(path: Path) -> Iterator[Any]:
    """Documents of one file (lists and ``kind: List`` flattened)."""
    with path.open("r", encoding="utf-8") as fh:
        if path.suffix == ".json":
            docs: Iterable[Any] = [json.load(fh)]
        else:
            docs = yaml.load_all(fh, Loader=_Loader)
        for doc in docs:
            yield from _flatten(doc)


def _flatten(doc: Any) -> Iterator[Any]:
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield from _flatten(item)
    elif (
        isinstance(doc, Mapping)
        and str(doc.get("kind", "")).endswith("List")
        and isinstance(doc.get("items"), list)
    ):
        for item in doc["items"]:
            yield from _flatten(item)
    else:
        yield doc


def manifest_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


class ManifestsSource:
    """Workloads from exported manifests in one directory (one cluster)."""

    kind = "manifests"

    def __init__(self, directory: Path | str, cluster: str | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise SourceConfigError(f"--manifests {self.directory}: not a directory")
        resolved = self.directory.resolve()
        self.cluster = cluster or resolved.name
        self.name = f"manifests:{self.cluster}"
        self.notes: list[str] = []
        #: kinds whose absence proves nothing (all of them once a file could not be read)
        self.skipped_kinds: set[str] = set()

    def _read(self, path: Path) -> Iterator[Any]:
        try:
            yield from iter_documents(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.notes.append(f"skipped unreadable file {path}: {first}")
            # the workloads of that file are unknown: their absence proves nothing
            self.skipped_kinds.update(SUPPORTED_KINDS)

    def namespace_labels(self, files: list[Path]) -> dict[str, dict[str, str]]:
        labels: dict[str, dict[str, str]] = {}
        before = len(self.notes)
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # reported by the main pass
            if not _NAMESPACE_HINT.search(text):
                continue
            try:
                for doc in self._read(path):
                    if isinstance(doc, Mapping) and doc.get("kind") == "Namespace":
                        meta = (
                            doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
                        )
                        assert isinstance(meta, Mapping)
                        name = str(meta.get("name") or "")
                        raw = meta.get("labels")
                        labels[name] = (
                            {str(k): str(v) for k, v in raw.items()}
                            if isinstance(raw, Mapping)
                            else {}
                        )
            finally:
                del self.notes[before:]  # parse errors are reported once, by the main pass
        return labels

    def discover(self) -> Iterator[DiscoveredWorkload]:
        try:
            files = manifest_files(self.directory)
        except OSError as e:
            raise SourceUnreachable(f"cannot read {self.directory}: {e}") from e
        if not files:
            # an empty export is a failed export, not a cluster where everything was retired
            raise SourceUnreachable(
                f"no manifest files ({', '.join('*' + s for s in SUFFIXES)}) below {self.directory}"
            )
        ns_labels = self.namespace_labels(files)
        for path in files:
            for doc in self._read(path):
                if not isinstance(doc, Mapping) or doc.get("kind") not in SUPPORTED_KINDS:
                    continue
                try:
                    workload = extract_workload(doc)
                except WorkloadError as e:
                    self.notes.append(f"skipped object in {path}: {e}")
                    continue
                if workload["controlled"]:
                    continue  # represented by its controller
                if not workload["namespace"]:
                    workload["namespace"] = "default"
                meta = doc.get("metadata")
                if isinstance(meta, dict):
                    meta.pop("managedFields", None)  # bulky, irrelevant to the policy
                yield DiscoveredWorkload(
                    cluster=self.cluster,
                    source=self.name,
                    obj=doc,
                    workload=workload,
                    runtime=runtime_from_object(doc, workload),
                    namespace_labels=ns_labels.get(workload["namespace"], {}),
                )
        if self.skipped_kinds:
            self.notes.append(
                f"{self.cluster}: the snapshot is incomplete (unreadable files); nothing is "
                "reported retired and no finding of this cluster is resolved by this scan"
            )


def _factory(options: Mapping[str, Any]) -> list[DiscoverySource]:
    dirs = options.get("paths") or []
    if isinstance(dirs, str | Path):
        dirs = [dirs]
    sources: list[DiscoverySource] = [ManifestsSource(Path(d)) for d in dirs]
    clusters = [s.cluster for s in sources]
    dupes = sorted({c for c in clusters if clusters.count(c) > 1})
    if dupes:
        raise SourceConfigError(f"several --manifests directories are named {', '.join(dupes)}")
    return sources


register_source("manifests", _factory)
