"""Loading a policy directory into a :class:`Bundle` (the same files OPA would load).

Layout rules (the same ones ``opa test policies/`` and ``opa run -s policies/`` apply):

* every ``*.rego`` file is a module; ``*_test.rego`` files are tests, kept apart and never
  served;
* a data file named ``data.json``, ``data.yaml`` or ``data.yml`` is loaded at the data path
  of its directory: ``policies/modelgate/config/data.yaml`` becomes ``data.modelgate.config``;
* hidden directories and ``__pycache__`` are skipped; other files (the Python engines living
  next to the bundle) are ignored.

The digest is a SHA-256 over the sorted relative paths and contents of everything that affects
decisions (served modules and data files, not tests), so it identifies the policy a decision
was made with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.engines.base import BundleError

DATA_FILE_NAMES = ("data.json", "data.yaml", "data.yml")
#: ``data.modelgate.<MARKER_KEY>.digest``: where engines put the digest of the bundle they serve
MARKER_KEY = "bundle"
MARKER_PATH = ("modelgate", MARKER_KEY)
_SKIP_DIRS = {"__pycache__", "node_modules"}

#: (relative path, size, mtime in ns) of every file that belongs to the bundle
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Bundle:
    """A loaded policy directory."""

    root: Path
    modules: Mapping[str, str]
    test_modules: Mapping[str, str]
    data: Mapping[str, Any]
    data_files: Mapping[tuple[str, ...], Any]
    digest: str
    fingerprint: Fingerprint = field(default=(), compare=False)

    def data_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, ensure_ascii=False)

    def served_data(self) -> dict[str, Any]:
        """The data an engine serves: the bundle's data plus the digest marker
        ``data.modelgate.bundle.digest`` that every answer carries back
        (``data.modelgate.admission.bundle_digest``)."""
        data = json.loads(json.dumps(self.data))
        modelgate = data.setdefault("modelgate", {})
        if isinstance(modelgate, dict):
            modelgate[MARKER_KEY] = {"digest": self.digest}
        return dict(data)


def _files(root: Path) -> Iterator[Path]:
    """Bundle files under root, in a stable order."""
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
            continue
        if entry.is_dir():
            yield from _files(entry)
        elif entry.is_file() and (entry.suffix == ".rego" or entry.name in DATA_FILE_NAMES):
            yield entry


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def fingerprint(root: Path) -> Fingerprint:
    """A cheap stat-based fingerprint: changes whenever a bundle file is added, removed or
    rewritten (the digest then decides whether the content really changed)."""
    out: list[tuple[str, int, int]] = []
    for path in _files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((_rel(root, path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def is_test_module(relpath: str) -> bool:
    return relpath.endswith("_test.rego")


def _parse_data(path: Path, text: str) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise BundleError(f"policy data file {path} is not valid {path.suffix[1:]}: {e}") from e


def _merge(tree: dict[str, Any], segments: tuple[str, ...], doc: Any, origin: str) -> None:
    if not segments:
        if not isinstance(doc, Mapping):
            raise BundleError(f"policy data file {origin} at the bundle root must hold a mapping")
        for k, v in doc.items():
            if k in tree:
                raise BundleError(f"policy data file {origin} redefines data.{k}")
            tree[str(k)] = v
        return
    node = tree
    for seg in segments[:-1]:
        nxt = node.setdefault(seg, {})
        if not isinstance(nxt, dict):
            raise BundleError(f"policy data file {origin} conflicts with other data at {seg}")
        node = nxt
    if segments[-1] in node:
        raise BundleError(f"policy data file {origin} conflicts with other data")
    node[segments[-1]] = doc


def load_bundle(root: Path) -> Bundle:
    """Read the policy directory; raises :class:`BundleError` when it cannot be used."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"policy directory {root} does not exist")
    fp = fingerprint(root)
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    data: dict[str, Any] = {}
    data_files: dict[tuple[str, ...], Any] = {}
    digest = hashlib.sha256()
    for path in _files(root):
        rel = _rel(root, path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BundleError(f"cannot read policy file {path}: {e}") from e
        if path.suffix == ".rego":
            if is_test_module(rel):
                tests[rel] = text
                continue
            modules[rel] = text
        else:
            doc = _parse_data(path, text)
            segments = tuple(Path(rel).parent.parts)
            _merge(data, segments, doc if doc is not None else {}, rel)
            data_files[segments] = doc if doc is not None else {}
        encoded = rel.encode("utf-8")
        body = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(body).to_bytes(8, "big") + body)
    if not modules:
        raise BundleError(f"policy directory {root} holds no Rego modules")
    return Bundle(
        root=root,
        modules=modules,
        test_modules=tests,
        data=data,
        data_files=data_files,
        digest=digest.hexdigest(),
        fingerprint=fp,
    )
