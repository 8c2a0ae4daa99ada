"""Extraction: every supported kind, pod-template paths, metadata precedence, Unicode."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from modelgate.workload import SUPPORTED_KINDS, WorkloadError, extract_workload, json_type_name

P = "modelgate.dev/"


def pod_spec(image: str, name: str = "server") -> dict[str, Any]:
    return {
        "initContainers": [{"name": "fetch", "image": "busybox:1.36"}],
        "containers": [
            {"name": name, "image": image, "resources": {"limits": {"nvidia.com/gpu": 1}}}
        ],
    }


def template(
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    image: str = "vllm/vllm-openai:v0.6.0",
) -> dict[str, Any]:
    return {
        "metadata": {"annotations": annotations or {}, "labels": labels or {}},
        "spec": pod_spec(image),
    }


def controller(kind: str, tmpl: dict[str, Any], **meta: Any) -> dict[str, Any]:
    group = SUPPORTED_KINDS[kind]
    spec: dict[str, Any] = {"template": tmpl}
    if kind == "CronJob":
        spec = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": tmpl}}}
    return {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": {"name": "fraud", "namespace": "ml", **meta},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", "spec.template"),
        ("StatefulSet", "spec.template"),
        ("DaemonSet", "spec.template"),
        ("ReplicaSet", "spec.template"),
        ("Job", "spec.template"),
        ("CronJob", "spec.jobTemplate.spec.template"),
    ],
)
def test_controllers_read_their_pod_template(kind: str, path: str) -> None:
    obj = controller(kind, template({P + "owner": "team-a"}, {P + "model": "true"}))
    w = extract_workload(obj)
    assert w["kind"] == kind
    assert (w["name"], w["namespace"]) == ("fraud", "ml")
    assert [t["path"] for t in w["templates"]] == [path]
    assert w["metadata"] == {"owner": "team-a"}
    assert w["metadata_sources"] == {"owner": f"{path}.annotation"}
    assert w["model_label"] is True
    assert w["images"] == ["busybox:1.36", "vllm/vllm-openai:v0.6.0"]
    roles = {c["name"]: c["role"] for c in w["containers"]}
    assert roles == {"fetch": "init", "server": "container"}
    assert w["containers"][1]["resources"] == {"limits": {"nvidia.com/gpu": 1}}


def test_pod_reads_its_own_spec_and_owner_references() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "fraud-7d9f-",
            "annotations": {P + "model-name": "fraud"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "fraud-7d9f", "controller": True}],
        },
        "spec": pod_spec("nvcr.io/nvidia/tritonserver:24.05-py3"),
    }
    w = extract_workload(pod, "ml")
    assert w["name"] == "fraud-7d9f-"  # generateName when the name is not assigned yet
    assert w["namespace"] == "ml"
    assert w["templates"] == []
    assert w["images"] == ["busybox:1.36", "nvcr.io/nvidia/tritonserver:24.05-py3"]
    assert w["controlled"] is True
    assert w["owner_references"][0]["name"] == "fraud-7d9f"
    pod["metadata"]["ownerReferences"][0]["controller"] = False
    assert extract_workload(pod)["controlled"] is False


def test_kserve_inference_service_components_and_storage_uris() -> None:
    isvc = yaml.safe_load(
        """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
  namespace: kserve-test
  annotations:
    modelgate.dev/model-name: iris
spec:
  predictor:
    annotations:
      modelgate.dev/owner: predictor-team
    labels:
      modelgate.dev/risk-tier: minimal
    model:
      modelFormat: {name: sklearn}
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
  transformer:
    containers:
      - name: kserve-container
        image: kserve/image-transformer:v0.11.0
  explainer:
    alibi:
      image: kserve/alibi-explainer:v0.11.0
      storageUri: s3://models/explainer
"""
    )
    w = extract_workload(isvc)
    assert w["storage_uris"] == [
        "gs://kfserving-examples/models/sklearn/1.0/model",
        "s3://models/explainer",
    ]
    assert w["images"] == ["kserve/image-transformer:v0.11.0", "kserve/alibi-explainer:v0.11.0"]
    assert {c["role"] for c in w["containers"]} == {"transformer-container", "explainer"}
    assert w["metadata"] == {
        "model-name": "iris",
        "owner": "predictor-team",
        "risk-tier": "minimal",
    }
    assert w["metadata_sources"]["owner"] == "spec.predictor.annotation"
    assert w["metadata_sources"]["risk-tier"] == "spec.predictor.label"


def test_seldon_deployment_component_specs_and_graph_uris() -> None:
    sdep = yaml.safe_load(
        """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: income, namespace: seldon}
spec:
  predictors:
    - name: default
      componentSpecs:
        - metadata:
            annotations: {modelgate.dev/owner: "seldon-team"}
          spec:
            containers:
              - name: classifier
                image: seldonio/mlserver:1.3.5
      graph:
        name: classifier
        modelUri: gs://seldon-models/income/classifier
        children:
          - name: explainer
            modelUri: gs://seldon-models/income/explainer
"""
    )
    w = extract_workload(sdep)
    assert [t["path"] for t in w["templates"]] == ["spec.predictors[0].componentSpecs[0]"]
    assert w["metadata"] == {"owner": "seldon-team"}
    assert w["images"] == ["seldonio/mlserver:1.3.5"]
    assert sorted(w["storage_uris"]) == [
        "gs://seldon-models/income/classifier",
        "gs://seldon-models/income/explainer",
    ]


def test_precedence_object_annotation_then_template_annotation_then_labels() -> None:
    obj = controller(
        "Deployment",
        template(
            annotations={
                P + "owner": "tmpl-ann",
                P + "model-version": "tmpl-ann",
                P + "source": "tmpl-ann",
            },
            labels={
                P + "owner": "tmpl-label",
                P + "training-run": "tmpl-label",
                P + "source": "tmpl-label",
                P + "risk-tier": "tmpl-label",
            },
        ),
        annotations={P + "owner": "obj-ann"},
        labels={
            P + "model-version": "obj-label",
            P + "risk-tier": "obj-label",
            P + "model": "true",
        },
    )
    w = extract_workload(obj)
    assert w["metadata"] == {
        "owner": "obj-ann",
        "model-version": "tmpl-ann",
        "source": "tmpl-ann",
        "risk-tier": "obj-label",
        "training-run": "tmpl-label",
    }
    assert w["metadata_sources"] == {
        "owner": "annotation",
        "model-version": "spec.template.annotation",
        "source": "spec.template.annotation",
        "risk-tier": "label",
        "training-run": "spec.template.label",
    }


def test_model_and_enforcement_keys_are_not_metadata_and_other_prefixes_ignored() -> None:
    obj = controller(
        "Deployment",
        template(),
        labels={P + "model": "TRUE", P + "enforcement": "warn", "app": "x"},
        annotations={"example.com/owner": "nope", "modelgate.devx/owner": "nope"},
    )
    w = extract_workload(obj)
    assert w["metadata"] == {}
    assert w["model_label"] is True  # case-insensitive "true"
    obj["metadata"]["labels"][P + "model"] = "false"
    assert extract_workload(obj)["model_label"] is False


def test_unicode_values_survive_unchanged() -> None:
    owner = "Zoë Müller-Łukasiewicz <zoë@例え.jp> 🤖"
    obj = controller(
        "Deployment",
        template(),
        annotations={P + "owner": owner, P + "exempt-reason": "Ausnahme für Prüfung \u2013 §7"},
    )
    w = extract_workload(obj)
    assert w["metadata"]["owner"] == owner
    assert w["metadata"]["exempt-reason"] == "Ausnahme für Prüfung \u2013 §7"


def test_unquoted_yaml_scalars_are_rendered_as_written() -> None:
    obj = yaml.safe_load(
        """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: m
  labels: {modelgate.dev/model: true}
  annotations:
    modelgate.dev/training-date: 2025-03-14
    modelgate.dev/model-version: 2
    modelgate.dev/metrics: {auc: 0.91}
    modelgate.dev/certifications: [{name: iso, expires: "2027-01-01"}]
    modelgate.dev/training-run: 2025-03-14T09:30:00Z
    modelgate.dev/source:
spec: {template: {spec: {containers: [{name: a, image: b}]}}}
"""
    )
    w = extract_workload(obj)
    assert w["model_label"] is True
    assert w["labels"][P + "model"] == "true"
    assert w["metadata"]["training-date"] == "2025-03-14"
    assert w["metadata"]["model-version"] == "2"
    assert w["metadata"]["metrics"] == '{"auc": 0.91}'
    assert w["metadata"]["certifications"] == '[{"name": "iso", "expires": "2027-01-01"}]'
    assert (
        w["metadata"]["training-run"] == dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC).isoformat()
    )
    assert w["metadata"]["source"] == ""


def test_namespace_argument_fills_in_only_when_missing() -> None:
    obj = controller("Deployment", template())
    assert extract_workload(obj, "other")["namespace"] == "ml"
    del obj["metadata"]["namespace"]
    assert extract_workload(obj, "other")["namespace"] == "other"
    assert extract_workload(obj)["namespace"] == ""


def test_unknown_kind_with_a_pod_template_is_still_described() -> None:
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "r"},
        "spec": {"template": template({P + "owner": "x"}, image="ghcr.io/huggingface/tgi:2.0")},
    }
    w = extract_workload(obj)
    assert w["images"] == ["busybox:1.36", "ghcr.io/huggingface/tgi:2.0"]
    assert w["metadata"] == {"owner": "x"}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": None},
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "nonsense"}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": ["x", None, 3]}}}},
        {"kind": "CronJob", "spec": {"jobTemplate": []}},
        {"kind": "InferenceService", "spec": {"predictor": []}},
        {"kind": "SeldonDeployment", "spec": {"predictors": {"a": 1}}},
        {"kind": "Pod", "metadata": {"labels": ["x"], "annotations": "y", "ownerReferences": 3}},
    ],
)
def test_odd_shapes_are_tolerated(obj: dict[str, Any]) -> None:
    w = extract_workload(obj)
    assert w["containers"] == []
    assert w["metadata"] == {}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (None, "mapping"),
        ([], "mapping"),
        ({"metadata": {}}, "no kind"),
        ({"kind": ""}, "no kind"),
        ({"kind": "Pod", "metadata": "x"}, "metadata"),
    ],
)
def test_objects_that_are_not_objects_raise_workload_error(obj: Any, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        extract_workload(obj)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        (3, "a number"),
        (2.5, "a number"),
        ("x", "a string"),
        ([1], "an array"),
        ({"a": 1}, "an object"),
    ],
)
def test_json_type_name_is_the_one_wording_of_error_messages(value: object, name: str) -> None:
    assert json_type_name(value) == name
