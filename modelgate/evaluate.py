"""``modelgate evaluate``: the admission decision for manifests on disk, without a cluster.

It uses the same extraction (:func:`modelgate.workload.extract_workload`), the same policy
input (:func:`modelgate.policy_input.build_input`, mode ``evaluate``) and the same engine as
the webhook, and the same rule for what is not evaluated
(:func:`modelgate.workload.skip_reason`).

Sign-off comes from the configured inventory (``MODELGATE_APPROVAL_SOURCE=inventory``, the
default): each model version is judged against its recorded approvals, as the webhook judges
it. ``--approval-source annotation`` trusts the ``compliance-status`` annotation instead, to
lint manifests before their versions are registered (CI); the output says which source was
used.

Exit status: 0 when everything is allowed, 1 when anything is denied, 2 when the input cannot
be read or parsed (or the policy bundle or the inventory cannot be read).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypedDict

import click
import yaml

from modelgate.policy_input import build_input, synthesize_request
from modelgate.settings import Settings, SettingsError
from modelgate.workload import (
    Workload,
    WorkloadError,
    extract_workload,
    json_type_name,
    skip_reason,
)
from policies.engines.base import PolicyEngine

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class InputError(Exception):
    """A manifest cannot be read or parsed (exit status 2)."""


class ObjectResult(TypedDict):
    kind: str
    name: str
    namespace: str
    is_model: bool
    allowed: bool
    violations: list[str]
    warnings: list[str]


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it came from (for error messages)."""

    source: str
    obj: dict[str, Any]


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        try:
            return "<stdin>", sys.stdin.read()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read standard input: {e}") from e
    try:
        return path, Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e


def _expand(path: str) -> list[str]:
    if path == "-":
        return ["-"]
    p = Path(path)
    if p.is_dir():
        files = sorted(
            str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MANIFEST_SUFFIXES
        )
        return files
    if not p.exists():
        raise InputError(f"{path}: no such file or directory")
    return [path]


def _documents(source: str, text: str) -> Iterator[Any]:
    if source.endswith(".json"):
        try:
            yield json.loads(text)
        except ValueError as e:
            raise InputError(f"{source}: not valid JSON: {e}") from e
        return
    try:
        # YAML is a superset of JSON, so stdin and .yaml files may hold either
        yield from yaml.safe_load_all(text)
    except yaml.YAMLError as e:
        raise InputError(f"{source}: not valid YAML: {_yaml_problem(e)}") from e


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)


def _objects(source: str, doc: Any, where: str) -> Iterator[Manifest]:
    if doc is None:  # empty document between '---' separators
        return
    if isinstance(doc, list):  # a JSON (or YAML) array of objects, as the auditor accepts
        for i, item in enumerate(doc):
            yield from _objects(source, item, f"{where} [{i}]")
        return
    if not isinstance(doc, dict):
        raise InputError(
            f"{where}: expected a Kubernetes object (a mapping), got {json_type_name(doc)}"
        )
    kind = doc.get("kind")
    items = doc.get("items")
    if isinstance(items, list) and (kind is None or str(kind).endswith("List")):
        for i, item in enumerate(items):
            yield from _objects(source, item, f"{where} items[{i}]")
        return
    if not isinstance(kind, str) or not kind:
        raise InputError(f"{where}: object has no kind")
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InputError(f"{where}: metadata must be a mapping")
    yield Manifest(source=where, obj=doc)


def load_manifests(paths: list[str]) -> list[Manifest]:
    """Every object in the given files, directories (recursively) or ``-`` (stdin)."""
    manifests: list[Manifest] = []
    for path in paths:
        files = _expand(path)
        if not files:
            raise InputError(f"{path}: no .yaml, .yml or .json files found")
        for file in files:
            source, text = _read(file)
            for n, doc in enumerate(_documents(source, text), 1):
                manifests.extend(_objects(source, doc, f"{source} (document {n})"))
    return manifests


def _namespace_labels(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = {}
    for m in manifests:
        if m.obj.get("kind") == "Namespace":
            meta = m.obj.get("metadata") or {}
            name = str(meta.get("name") or "")
            raw = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
            labels[name] = {str(k): str(v) for k, v in (raw or {}).items()}
    return labels


RegistryLookup = Callable[[Workload], Mapping[str, Any]]


def evaluate_manifests(
    manifests: list[Manifest],
    engine: PolicyEngine,
    default_namespace: str = "default",
    registry: RegistryLookup | None = None,
) -> list[ObjectResult]:
    """Decide every object (with ``registry``, against each version's recorded sign-off);
    raises :class:`InputError` for objects that cannot be described."""
    ns_labels = _namespace_labels(manifests)
    results: list[ObjectResult] = []
    for m in manifests:
        obj = m.obj
        kind = str(obj["kind"])
        meta = obj.get("metadata") or {}
        if skip_reason(kind, obj) is not None:
            results.append(
                ObjectResult(
                    kind=kind,
                    name=str(meta.get("name") or meta.get("generateName") or ""),
                    namespace=str(meta.get("namespace") or ""),
                    is_model=False,
                    allowed=True,
                    violations=[],
                    warnings=[],
                )
            )
            continue
        try:
            workload = extract_workload(obj, default_namespace)
        except WorkloadError as e:
            raise InputError(f"{m.source}: {e}") from e
        policy_input = build_input(
            request=synthesize_request(obj, workload),
            workload=workload,
            mode="evaluate",
            namespace_labels=ns_labels.get(workload["namespace"], {}),
            registry=registry(workload) if registry is not None else None,
        )
        result = engine.evaluate(policy_input)
        results.append(
            ObjectResult(
                kind=kind,
                name=workload["name"],
                namespace=workload["namespace"],
                is_model=bool(result.is_model),
                allowed=bool(result.allowed),
                violations=list(result.deny),
                warnings=list(result.warn),
            )
        )
    return results


def render_table(results: list[ObjectResult], note: str | None = None) -> str:
    headers = ("RESULT", "KIND", "NAMESPACE", "NAME", "MODEL")
    rows = [
        (
            "denied" if not r["allowed"] else ("warned" if r["warnings"] else "allowed"),
            r["kind"],
            r["namespace"] or "-",
            r["name"] or "-",
            "yes" if r["is_model"] else "no",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r, row in zip(results, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"    ✗ {v}" for v in r["violations"])
        lines.extend(f"    ! {w}" for w in r["warnings"])
    denied = sum(1 for r in results if not r["allowed"])
    lines.append("")
    if note:
        lines.append(note)
    lines.append(f"{len(results)} objects, {denied} denied")
    return "\n".join(lines)


def _fail(message: str) -> NoReturn:
    click.echo(f"modelgate evaluate: {message}", err=True)
    sys.exit(2)


def inventory_registry(settings: Settings, cluster: str) -> tuple[RegistryLookup, str]:
    """The recorded sign-off of every version in the configured inventory (read once), and
    how to name the source."""
    from modelgate.approvals import unregistered_entry
    from modelgate.inventory.db import Database, InventoryError, missing_sqlite_file, redact
    from modelgate.inventory.registry import version_of
    from modelgate.inventory.signoff import registry_entries

    hint = "; use --approval-source annotation to lint manifests without the inventory"
    try:
        db = Database(settings.database_url)
    except InventoryError as e:
        _fail(f"MODELGATE_DATABASE_URL: {e}{hint}")
    where = redact(db.url)
    missing = missing_sqlite_file(db.url)
    if missing is not None:
        _fail(f"no inventory database at {where} (file {missing} does not exist){hint}")
    try:
        entries = registry_entries(db, cluster)
    except InventoryError as e:
        _fail(f"cannot read approvals from the inventory: {e}{hint}")
    finally:
        db.dispose()

    def lookup(workload: Workload) -> Mapping[str, Any]:
        key = version_of(workload)
        return entries.get(key) or unregistered_entry(cluster, *key)

    return lookup, f"approval source: inventory ({where}, cluster {cluster})"


ANNOTATION_NOTE = (
    "approval source: annotation (the compliance-status annotation is trusted; with "
    "MODELGATE_APPROVAL_SOURCE=inventory admission checks recorded approvals)"
)


@click.command("evaluate")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="PATH|-",
    help="Manifest file, directory (recursive) or - for stdin. Repeatable.",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["json", "table"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Policy bundle directory (default: MODELGATE_POLICY_DIR or the shipped bundle).",
)
@click.option(
    "--namespace",
    "-n",
    default="default",
    show_default=True,
    help="Namespace for objects that do not name one.",
)
@click.option(
    "--approval-source",
    type=click.Choice(["inventory", "annotation"]),
    default=None,
    help="Judge sign-off from the recorded approvals of the inventory (MODELGATE_DATABASE_URL)"
    " or trust the compliance-status annotation (CI linting before registration). "
    "Default: MODELGATE_APPROVAL_SOURCE, else inventory.",
)
@click.option(
    "--cluster",
    default=None,
    help="Cluster the approvals' scope is checked for (default: MODELGATE_CLUSTER_NAME).",
)
def evaluate_command(
    paths: tuple[str, ...],
    output: str,
    policy_dir: Path | None,
    namespace: str,
    approval_source: str | None,
    cluster: str | None,
) -> None:
    """Decide, offline, whether every object in the manifests would be admitted.

    Exit status 0: all allowed; 1: something is denied; 2: unreadable input.
    """
    try:
        manifests = load_manifests(list(paths))
    except InputError as e:
        _fail(str(e))
    if not manifests:
        _fail(f"no Kubernetes objects found in {', '.join(paths)}")

    from policies.engines.base import PolicyError

    try:
        settings = Settings.from_env(policy_dir=policy_dir, approval_source=approval_source)
    except SettingsError as e:
        _fail(str(e))
    registry: RegistryLookup | None = None
    source_note = ANNOTATION_NOTE
    if settings.approval_source == "inventory":
        registry, source_note = inventory_registry(settings, cluster or settings.cluster_name)
    try:
        from modelgate.engine import engine_for

        engine = engine_for(settings)
    except PolicyError as e:
        _fail(f"cannot load the policy bundle from {settings.policy_dir}: {e}")
    if not engine.ready():
        reason = engine.last_error or "no bundle loaded"
        engine.close()
        _fail(f"cannot load the policy bundle from {settings.policy_dir}: {reason}")
    try:
        results = evaluate_manifests(manifests, engine, namespace, registry)
    except InputError as e:
        _fail(str(e))
    except PolicyError as e:
        _fail(f"policy evaluation failed: {e}")
    finally:
        engine.close()

    if output == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
        click.echo(source_note, err=True)
    else:
        click.echo(render_table(results, source_note))
    sys.exit(1 if any(not r["allowed"] for r in results) else 0)


__all__ = [
    "InputError",
    "Manifest",
    "ObjectResult",
    "evaluate_command",
    "evaluate_manifests",
    "load_manifests",
]
