"""``modelgate evaluate``: manifests in, decisions out, through the real embedded engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from modelgate.cli import main
from modelgate.evaluate import InputError, load_manifests, skip_reason
from tests.webhook.reviews import COMPLIANT, P


def model(name: str, annotations: dict[str, str], namespace: str | None = "ml") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {P + "model": "true"},
        "annotations": annotations,
    }
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "s", "image": "vllm/vllm-openai:v0.6.0"}]},
            },
        },
    }


CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {}}
WEB = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ml"},
    "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "nginx:1.27"}]}}},
}


def run(*args: str, input: str | None = None) -> Result:
    """``modelgate evaluate`` judging the annotations (recorded sign-off:
    tests/test_evaluate_signoff.py)."""
    return CliRunner().invoke(
        main,
        ["evaluate", *args],
        input=input,
        catch_exceptions=False,
        env={"MODELGATE_APPROVAL_SOURCE": "annotation"},
    )


def write_yaml(path: Path, *docs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
    return path


def by_name(result: Result) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(result.stdout)}


# -- decisions (real engine) ----------------------------------------------------------------


def test_compliant_manifests_exit_0_with_json_shape(tmp_path: Path) -> None:
    f = write_yaml(tmp_path / "ok.yaml", model("fraud", COMPLIANT), CONFIGMAP, WEB)
    result = run("-f", str(f), "--output", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [set(r) for r in out] == [
        {"kind", "name", "namespace", "is_model", "allowed", "violations", "warnings"}
    ] * 3
    fraud, cfg, web = out
    assert (fraud["kind"], fraud["name"], fraud["namespace"]) == ("Deployment", "fraud", "ml")
    assert fraud["is_model"] is True and fraud["allowed"] is True
    assert fraud["violations"] == []
    assert cfg == {
        "kind": "ConfigMap",
        "name": "cfg",
        "namespace": "",
        "is_model": False,
        "allowed": True,
        "violations": [],
        "warnings": [],
    }
    assert web["is_model"] is False and web["allowed"] is True


def test_denied_manifest_exits_1_and_names_every_missing_key(tmp_path: Path) -> None:
    partial = {k: v for k, v in COMPLIANT.items() if not k.endswith(("owner", "training-data"))}
    f = write_yaml(tmp_path / "bad.yaml", model("fraud", partial), model("ok", COMPLIANT))
    result = run("-f", str(f), "-o", "json")
    assert result.exit_code == 1
    out = by_name(result)
    assert out["ok"]["allowed"] is True
    assert out["fraud"]["allowed"] is False
    text = " ".join(out["fraud"]["violations"])
    assert len(out["fraud"]["violations"]) == 2
    assert P + "owner" in text and P + "training-data" in text


def test_table_output_lists_results_and_problems(tmp_path: Path) -> None:
    f = write_yaml(tmp_path / "m.yaml", model("fraud", {}), CONFIGMAP)
    result = run("-f", str(f))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RESULT", "KIND", "NAMESPACE", "NAME", "MODEL"]
    assert lines[1].split() == ["denied", "Deployment", "ml", "fraud", "yes"]
    assert sum(1 for line in lines if line.strip().startswith("✗")) == 6
    assert any(line.split() == ["allowed", "ConfigMap", "-", "cfg", "no"] for line in lines)
    assert lines[-1] == "2 objects, 1 denied"


def test_namespace_objects_supply_enforcement_labels(tmp_path: Path) -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "sandbox", "labels": {P + "enforcement": "warn"}},
    }
    f = write_yaml(tmp_path / "m.yaml", ns, model("fraud", {}, namespace="sandbox"), model("x", {}))
    result = run("-f", str(f), "-o", "json")
    assert result.exit_code == 1  # "x" in namespace ml is still enforced
    out = by_name(result)
    assert out["fraud"]["allowed"] is True
    assert len(out["fraud"]["warnings"]) >= 6
    assert out["sandbox"]["kind"] == "Namespace"
    assert out["x"]["allowed"] is False


def test_objects_without_namespace_use_the_default_namespace(tmp_path: Path) -> None:
    f = write_yaml(tmp_path / "m.yaml", model("fraud", COMPLIANT, namespace=None))
    result = run("-f", str(f), "-o", "json", "-n", "team-a")
    assert json.loads(result.stdout)[0]["namespace"] == "team-a"


def test_stdin_json_list_and_directories(tmp_path: Path) -> None:
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": [model("a", COMPLIANT)]})
    result = run("-f", "-", "-o", "json", input=listing)
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["a"]

    write_yaml(tmp_path / "d" / "one.yaml", model("b", COMPLIANT))
    (tmp_path / "d" / "nested").mkdir()
    (tmp_path / "d" / "nested" / "two.json").write_text(
        json.dumps({"items": [model("c", {}), CONFIGMAP]})
    )
    (tmp_path / "d" / "README.md").write_text("not a manifest")
    result = run("-f", str(tmp_path / "d"), "-f", "-", "-o", "json", input=listing)
    assert result.exit_code == 1
    assert [r["name"] for r in json.loads(result.stdout)] == [
        "c",
        "cfg",
        "b",
        "a",
    ]  # paths in sorted order, then stdin

    # a JSON array of objects (what the auditor's --manifests accepts too)
    (tmp_path / "array.json").write_text(json.dumps([model("e", COMPLIANT), model("f", {})]))
    result = run("-f", str(tmp_path / "array.json"), "-o", "json")
    assert result.exit_code == 1
    assert [(r["name"], r["allowed"]) for r in json.loads(result.stdout)] == [
        ("e", True),
        ("f", False),
    ]
    (tmp_path / "bad-array.json").write_text(json.dumps([model("g", COMPLIANT), 7]))
    result = run("-f", str(tmp_path / "bad-array.json"))
    assert result.exit_code == 2
    assert "bad-array.json (document 1) [1]: expected a Kubernetes object" in result.stderr


def test_custom_policy_dir_is_used(tmp_path: Path) -> None:
    import shutil

    from modelgate.settings import DEFAULT_POLICY_DIR

    bundle = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR / "modelgate", bundle / "modelgate")
    data = bundle / "modelgate" / "config" / "data.yaml"
    text = data.read_text()
    assert '  - "compliance-status"\n' in text
    data.write_text(
        text.replace('  - "compliance-status"\n', '  - "compliance-status"\n  - "source"\n', 1)
    )
    f = write_yaml(tmp_path / "m.yaml", model("fraud", COMPLIANT))
    assert run("-f", str(f)).exit_code == 0
    result = run("-f", str(f), "-o", "json", "--policy-dir", str(bundle))
    assert result.exit_code == 1
    (violation,) = json.loads(result.stdout)[0]["violations"]
    assert P + "source" in violation


def test_unloadable_policy_dir_exits_2(tmp_path: Path) -> None:
    f = write_yaml(tmp_path / "m.yaml", model("fraud", COMPLIANT))
    result = run("-f", str(f), "--policy-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "cannot load the policy bundle" in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output


# -- bad input: exit 2 with a clear message, no traceback -----------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.yaml", "kind: Deployment\n  metadata: [\n", "not valid YAML"),
        ("bad.json", '{"kind": "Deployment",', "not valid JSON"),
        ("scalar.yaml", "just a string\n", "a Kubernetes object (a mapping), got a string"),
        ("list.yaml", "- a\n- b\n", "expected a Kubernetes object"),
        ("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "object has no kind"),
        ("meta.yaml", "kind: Deployment\nmetadata: [1]\n", "metadata must be a mapping"),
        ("empty.yaml", "---\n---\n", "no Kubernetes objects found"),
    ],
)
def test_unparseable_input_exits_2(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    result = run("-f", str(f))
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert str(f) in result.stderr or "no Kubernetes objects" in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_and_binary_file_exit_2(tmp_path: Path) -> None:
    result = run("-f", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = run("-f", str(binary))
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr
    (tmp_path / "emptydir").mkdir()
    result = run("-f", str(tmp_path / "emptydir"))
    assert result.exit_code == 2
    assert "no .yaml, .yml or .json files" in result.stderr


def test_load_manifests_raises_input_error_with_location(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("kind: ConfigMap\nmetadata: {name: a}\n---\n42\n")
    with pytest.raises(InputError, match=r"m\.yaml \(document 2\)"):
        load_manifests([str(f)])


def test_skip_reason_matches_the_webhook_rules() -> None:
    assert skip_reason("ConfigMap", {}) == "unsupported-kind"
    assert skip_reason("Deployment", {}) is None
    owned = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": True}]}}
    assert skip_reason("Pod", owned) == "controlled-pod"
    assert skip_reason("Pod", {"metadata": {"ownerReferences": [{"kind": "X"}]}}) is None
    # any workload whose controller modelgate judges was judged through that controller
    by_deployment = {"metadata": {"ownerReferences": [{"kind": "Deployment", "controller": True}]}}
    assert skip_reason("ReplicaSet", by_deployment) == "controlled"
    by_cronjob = {"metadata": {"ownerReferences": [{"kind": "CronJob", "controller": True}]}}
    assert skip_reason("Job", by_cronjob) == "controlled"
    by_rollout = {"metadata": {"ownerReferences": [{"kind": "Rollout", "controller": True}]}}
    assert skip_reason("ReplicaSet", by_rollout) is None
    not_controller = {"metadata": {"ownerReferences": [{"kind": "Deployment"}]}}
    assert skip_reason("ReplicaSet", not_controller) is None
    deleting = {"metadata": {"deletionTimestamp": "2026-11-26T07:00:00Z"}}
    assert skip_reason("Deployment", deleting) == "being-deleted"
