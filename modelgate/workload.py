"""Workload extraction: one Kubernetes object in, one flat description out.

The webhook, ``modelgate evaluate`` and the auditor all call :func:`extract_workload`, so a
model is judged the same way wherever it is seen. The result is plain JSON (a ``TypedDict``)
because it travels into the Rego policy as ``input.workload``.

Metadata precedence for every ``modelgate.dev/*`` key (first found wins):
object annotations > pod-template annotations > object labels > pod-template labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypedDict

from modelgate import ANNOTATION_PREFIX, MODEL_LABEL


def json_type_name(value: Any) -> str:
    """A JSON (or YAML) value's type as error messages name it: "a string", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object"


class WorkloadError(ValueError):
    """The object cannot be described as a workload (not a mapping, no kind, ...)."""


class Container(TypedDict):
    name: str
    image: str
    role: str  # "container", "init" or a component name (predictor, transformer, ...)
    resources: dict[str, Any]


class TemplateMeta(TypedDict):
    path: str
    labels: dict[str, str]
    annotations: dict[str, str]


class Workload(TypedDict):
    api_version: str
    kind: str
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    templates: list[TemplateMeta]
    containers: list[Container]
    images: list[str]
    storage_uris: list[str]
    metadata: dict[str, str]
    metadata_sources: dict[str, str]
    model_label: bool
    #: judged through its controller, so never on its own (see :func:`controller_reason`)
    controlled: bool
    owner_references: list[dict[str, Any]]


#: Kinds the webhook and the auditor understand, with their API groups.
SUPPORTED_KINDS: dict[str, str] = {
    "Deployment": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "ReplicaSet": "apps",
    "Job": "batch",
    "CronJob": "batch",
    "Pod": "",
    "InferenceService": "serving.kserve.io",
    "SeldonDeployment": "machinelearning.seldon.io",
}

_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

_KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")


def _scalar_text(value: Any) -> str:
    """The string a manifest value stands for.

    The API server only accepts string labels and annotations, but offline manifests
    (``modelgate evaluate``) often carry unquoted YAML scalars: render them the way they were
    written (``true`` not ``True``, ISO dates with ``T``, JSON for mappings and lists) so the
    policy judges the value and not Python's ``repr``.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): _scalar_text(v) for k, v in value.items()}


def _get(obj: Any, *path: str) -> Any:
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _containers_of(pod_spec: Any, role_prefix: str = "") -> list[Container]:
    out: list[Container] = []
    if not isinstance(pod_spec, Mapping):
        return out
    for key, role in (("initContainers", "init"), ("containers", "container")):
        for c in _list(pod_spec.get(key)):
            if not isinstance(c, Mapping):
                continue
            out.append(
                Container(
                    name=str(c.get("name") or ""),
                    image=str(c.get("image") or ""),
                    role=f"{role_prefix}{role}" if role_prefix else role,
                    resources=dict(c.get("resources") or {})
                    if isinstance(c.get("resources"), Mapping)
                    else {},
                )
            )
    return out


def _template_meta(template: Any, path: str) -> TemplateMeta | None:
    meta = _get(template, "metadata")
    if not isinstance(template, Mapping):
        return None
    return TemplateMeta(
        path=path,
        labels=_str_map(_get(meta, "labels")),
        annotations=_str_map(_get(meta, "annotations")),
    )


def _kserve(
    spec: Mapping[str, Any],
) -> tuple[list[Container], list[str], list[TemplateMeta]]:
    containers: list[Container] = []
    uris: list[str] = []
    templates: list[TemplateMeta] = []
    for component in _KSERVE_COMPONENTS:
        comp = spec.get(component)
        if not isinstance(comp, Mapping):
            continue
        # KServe components carry the pod's labels/annotations directly (ComponentExtensionSpec)
        if isinstance(comp.get("labels"), Mapping) or isinstance(comp.get("annotations"), Mapping):
            templates.append(
                TemplateMeta(
                    path=f"spec.{component}",
                    labels=_str_map(comp.get("labels")),
                    annotations=_str_map(comp.get("annotations")),
                )
            )
        containers.extend(_containers_of(comp, f"{component}-"))
        for sub_name, sub in comp.items():
            # framework/model specs: {"model": {...}}, {"sklearn": {...}}, {"pytorch": {...}}
            if not isinstance(sub, Mapping) or sub_name in ("labels", "annotations"):
                continue
            if sub.get("storageUri"):
                uris.append(str(sub["storageUri"]))
            if sub.get("image"):
                containers.append(
                    Container(
                        name=str(sub.get("name") or sub_name),
                        image=str(sub["image"]),
                        role=component,
                        resources=dict(sub.get("resources") or {})
                        if isinstance(sub.get("resources"), Mapping)
                        else {},
                    )
                )
    return containers, uris, templates


def _seldon(
    spec: Mapping[str, Any],
) -> tuple[list[Container], list[str], list[TemplateMeta]]:
    containers: list[Container] = []
    uris: list[str] = []
    templates: list[TemplateMeta] = []
    for i, predictor in enumerate(_list(spec.get("predictors"))):
        if not isinstance(predictor, Mapping):
            continue
        for j, component in enumerate(_list(predictor.get("componentSpecs"))):
            if not isinstance(component, Mapping):
                continue
            meta = _template_meta(component, f"spec.predictors[{i}].componentSpecs[{j}]")
            if meta is not None:
                templates.append(meta)
            containers.extend(_containers_of(component.get("spec")))
        stack = [predictor.get("graph")]
        while stack:
            node = stack.pop()
            if not isinstance(node, Mapping):
                continue
            if node.get("modelUri"):
                uris.append(str(node["modelUri"]))
            stack.extend(_list(node.get("children")))
    return containers, uris, templates


def extract_workload(obj: Any, namespace: str | None = None) -> Workload:
    """Describe one Kubernetes object as a :class:`Workload`.

    ``namespace`` fills in the namespace when the object omits it (as AdmissionReview
    objects for CREATE often do).
    """
    if not isinstance(obj, Mapping):
        raise WorkloadError("object must be a mapping")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise WorkloadError("object has no kind")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise WorkloadError("object metadata must be a mapping")
    metadata = metadata or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)

    templates: list[TemplateMeta] = []
    containers: list[Container] = []
    uris: list[str] = []

    if kind in _POD_TEMPLATE_PATHS:
        path = _POD_TEMPLATE_PATHS[kind]
        template = _get(obj, *path)
        meta = _template_meta(template, ".".join(path))
        if meta is not None:
            templates.append(meta)
        containers = _containers_of(_get(template, "spec"))
    elif kind == "Pod":
        containers = _containers_of(spec)
    elif kind == "InferenceService":
        containers, uris, templates = _kserve(spec)
    elif kind == "SeldonDeployment":
        containers, uris, templates = _seldon(spec)
    else:
        # unknown kinds: still look for a conventional pod template
        template = _get(obj, "spec", "template")
        meta = _template_meta(template, "spec.template")
        if meta is not None:
            templates.append(meta)
            containers = _containers_of(_get(template, "spec"))

    labels = _str_map(metadata.get("labels"))
    annotations = _str_map(metadata.get("annotations"))
    merged, sources = _merge_metadata(labels, annotations, templates)
    owners = [dict(o) for o in _list(metadata.get("ownerReferences")) if isinstance(o, Mapping)]

    # distinct, in order (a dict, not a list scan: linear in the number of containers)
    images = list(dict.fromkeys(c["image"] for c in containers if c["image"]))

    return Workload(
        api_version=str(obj.get("apiVersion") or ""),
        kind=kind,
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        namespace=str(metadata.get("namespace") or namespace or ""),
        labels=labels,
        annotations=annotations,
        templates=templates,
        containers=containers,
        images=images,
        storage_uris=uris,
        metadata=merged,
        metadata_sources=sources,
        model_label=_is_true(labels.get(MODEL_LABEL))
        or any(_is_true(t["labels"].get(MODEL_LABEL)) for t in templates),
        controlled=controller_reason(kind, owners) is not None,
        owner_references=owners,
    )


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _merge_metadata(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    templates: Iterable[TemplateMeta],
) -> tuple[dict[str, str], dict[str, str]]:
    templates = list(templates)
    layers: list[tuple[str, Mapping[str, str]]] = [("annotation", annotations)]
    layers += [(f"{t['path']}.annotation", t["annotations"]) for t in templates]
    layers.append(("label", labels))
    layers += [(f"{t['path']}.label", t["labels"]) for t in templates]
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            short = key[len(ANNOTATION_PREFIX) :]
            if short in merged or short in ("model", "enforcement"):
                continue
            merged[short] = value
            sources[short] = source
    return merged, sources


def controller_reason(kind: str, owner_references: Any) -> str | None:
    """Why an object is judged through its controller instead of on its own, or ``None``.

    * A Pod created by any controller (``ownerReferences[].controller: true``) was judged
      through that controller (``controlled-pod``).
    * Any other workload whose controller is itself a kind modelgate judges was judged
      through that controller (``controlled``): the ReplicaSets a Deployment rolls out, the
      Jobs a CronJob starts, the Deployments KServe creates for an InferenceService. Their
      metadata is not always copied from the controller (a CronJob's Jobs get only
      ``jobTemplate``'s), so judging them again would refuse the children of an admitted
      workload. A workload owned by a kind modelgate does not judge (an operator's custom
      resource) is judged itself, at admission and in audits alike.
    """
    controllers = [
        o
        for o in (owner_references if isinstance(owner_references, list) else [])
        if isinstance(o, Mapping) and o.get("controller") is True
    ]
    if kind == "Pod" and controllers:
        return "controlled-pod"
    if any(o.get("kind") in SUPPORTED_KINDS for o in controllers):
        return "controlled"
    return None


def skip_reason(kind: str, obj: Mapping[str, Any] | None) -> str | None:
    """Why an object is allowed without evaluation, or ``None`` when it must be evaluated.
    The webhook, ``modelgate evaluate`` and the auditor's sources all apply this rule.

    * Kinds outside :data:`SUPPORTED_KINDS` are not workloads modelgate judges
      (``unsupported-kind``).
    * Workloads judged through their controller: :func:`controller_reason`.
    * An object being deleted (``metadata.deletionTimestamp`` set: an UPDATE that removes a
      finalizer) is not judged, so a non-compliant workload can always be deleted
      (``being-deleted``).
    """
    if kind not in SUPPORTED_KINDS:
        return "unsupported-kind"
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    if metadata.get("deletionTimestamp"):
        return "being-deleted"
    return controller_reason(kind, metadata.get("ownerReferences"))
