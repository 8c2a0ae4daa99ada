"""The webhook app through the Flask test client, with fakes of our own seams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from modelgate.settings import Settings
from webhook.app import MAX_WARNING_CHARS, app_state, create_app, format_denial

from .fakes import FailingEngine, FakeEngine, FakeRecorder, SlowEngine
from .reviews import COMPLETE, deployment, review

JSON = "application/json"


def make_app(
    engine: FakeEngine | None = None,
    recorder: FakeRecorder | None = None,
    **settings: Any,
) -> Flask:
    settings.setdefault("approval_source", "annotation")  # sign-off: tests/webhook/test_signoff.py
    return create_app(
        Settings(**settings),
        engine=engine or FakeEngine(),
        recorder=recorder or FakeRecorder(),
        reload_in_background=False,
    )


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def recorder() -> FakeRecorder:
    return FakeRecorder()


@pytest.fixture
def app(engine: FakeEngine, recorder: FakeRecorder) -> Iterator[Flask]:
    app = make_app(engine, recorder)
    yield app
    app_state(app).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: Any, path: str = "/validate") -> Any:
    resp = client.post(path, data=json.dumps(body), content_type=JSON)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


# -- malformed input: always a 4xx JSON error, never a 500 -----------------------------------

MALFORMED: list[tuple[str, bytes, str, int, str]] = [
    ("not json", b"{not json", JSON, 400, "not JSON"),
    ("not utf-8", b"\xff\xfe{}", JSON, 400, "not UTF-8"),
    ("array", b"[1, 2]", JSON, 400, "JSON object"),
    ("string", b'"hello"', JSON, 400, "JSON object"),
    ("empty body", b"", JSON, 400, "not JSON"),
    (
        "wrong kind",
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}).encode(),
        JSON,
        400,
        "kind must be 'AdmissionReview'",
    ),
    (
        "v1beta1",
        json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(),
        JSON,
        400,
        "apiVersion must be 'admission.k8s.io/v1'",
    ),
    (
        "no request",
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
        JSON,
        400,
        "no request",
    ),
    (
        "request not an object",
        json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": [1]}
        ).encode(),
        JSON,
        400,
        "request must be an object",
    ),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "nested too deeply"),
    (
        "unpaired surrogate",
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "operation": "CREATE",
                    "object": {"kind": "Pod", "metadata": {"annotations": {"a": "\ud800"}}},
                },
            }
        ).encode(),
        JSON,
        400,
        "unpaired surrogate",
    ),
    ("wrong content type", b"{}", "text/plain", 415, "application/json"),
    ("no content type", b"{}", "", 415, "application/json"),
    ("yaml content type", b"{}", "application/yaml", 415, "application/json"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed_input_gets_a_json_4xx(
    client: FlaskClient, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    resp = client.post("/validate", data=body, content_type=content_type)
    assert resp.status_code == status
    assert resp.is_json
    assert fragment in resp.get_json()["error"]
    # the server keeps serving afterwards
    assert client.get("/healthz").status_code == 200


def _mutated(mutate: Any) -> dict[str, Any]:
    body = review(deployment(annotations=COMPLETE))
    mutate(body["request"])
    return body


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda r: r.pop("uid"), "uid"),
        (lambda r: r.update(uid=""), "uid"),
        (lambda r: r.update(uid=42), "uid"),
        (lambda r: r.pop("object"), "object is required for CREATE"),
        (lambda r: r.update(object=None), "object is required for CREATE"),
        (lambda r: r.update(object="Deployment"), "object must be an object"),
        (lambda r: r.update(operation="PATCH"), "operation"),
        (lambda r: r.pop("operation"), "operation"),
        (lambda r: r.update(dryRun="yes"), "dryRun"),
        (lambda r: r.update(namespace=["ml"]), "namespace"),
        (lambda r: r.update(kind={}, object={"metadata": {}}), "no kind"),
        (lambda r: r["object"].update(metadata="oops"), "metadata"),
    ],
    ids=[
        "no uid",
        "empty uid",
        "numeric uid",
        "no object",
        "null object",
        "string object",
        "bad operation",
        "no operation",
        "dryRun not bool",
        "namespace not string",
        "object without kind",
        "metadata not a mapping",
    ],
)
def test_invalid_request_fields_get_400(client: FlaskClient, mutate: Any, fragment: str) -> None:
    resp = client.post("/validate", data=json.dumps(_mutated(mutate)), content_type=JSON)
    assert resp.status_code == 400
    assert fragment in resp.get_json()["error"]


def test_oversized_body_gets_413(recorder: FakeRecorder) -> None:
    app = make_app(recorder=recorder, max_request_bytes=2048)
    body = review(deployment(annotations={**COMPLETE, "big": "x" * 5000}))
    resp = app.test_client().post("/validate", data=json.dumps(body), content_type=JSON)
    assert resp.status_code == 413
    assert "2048 bytes" in resp.get_json()["error"]
    assert recorder.events == []


def test_wrong_method_and_unknown_mode_are_json_errors(client: FlaskClient) -> None:
    resp = client.get("/validate")
    assert resp.status_code == 405
    assert "error" in resp.get_json()
    resp = client.post("/validate/strict", data=json.dumps(review(None)), content_type=JSON)
    assert resp.status_code == 404
    assert "enforce, warn, off" in resp.get_json()["error"]


# -- decisions ------------------------------------------------------------------------------


def test_compliant_model_is_allowed_and_uid_echoed(client: FlaskClient) -> None:
    body = review(deployment(annotations=COMPLETE), uid="0f7c-uid-echo")
    out = post(client, body)
    assert out["apiVersion"] == "admission.k8s.io/v1"
    assert out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == "0f7c-uid-echo"
    assert out["response"]["allowed"] is True
    assert "status" not in out["response"]


def test_denial_lists_every_violation_in_one_message(client: FlaskClient) -> None:
    out = post(client, review(deployment(annotations={})))
    resp = out["response"]
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    message = resp["status"]["message"]
    assert message.startswith("modelgate denied Deployment ml/fraud: 3 problems: (1) ")
    for key in ("model-name", "model-version", "owner"):
        assert f"modelgate.dev/{key}" in message
    assert "(2)" in message and "(3)" in message


def test_format_denial_counts_in_singular() -> None:
    text = format_denial("Pod", "", "p", ["missing x"])
    assert text == "modelgate denied Pod p: 1 problem: (1) missing x"


def test_warn_route_admits_with_warnings(client: FlaskClient, engine: FakeEngine) -> None:
    out = post(client, review(deployment(annotations={})), "/validate/warn")
    resp = out["response"]
    assert resp["allowed"] is True
    assert len(resp["warnings"]) == 3
    assert all(w.startswith("modelgate: missing annotation") for w in resp["warnings"])
    assert engine.calls[-1]["enforcement"] == "warn"


def test_default_route_leaves_enforcement_to_the_policy(
    client: FlaskClient, engine: FakeEngine
) -> None:
    post(client, review(deployment(annotations=COMPLETE)))
    assert engine.calls[-1]["enforcement"] is None
    assert engine.calls[-1]["mode"] == "admission"
    assert engine.calls[-1]["workload"]["namespace"] == "ml"
    post(client, review(deployment(annotations=COMPLETE)), "/validate/enforce")
    assert engine.calls[-1]["enforcement"] == "enforce"


def test_namespace_taken_from_request_when_object_omits_it(
    client: FlaskClient, engine: FakeEngine
) -> None:
    out = post(client, review(deployment(namespace=None, annotations={}), namespace="team-a"))
    assert "team-a/fraud" in out["response"]["status"]["message"]
    assert engine.calls[-1]["workload"]["namespace"] == "team-a"


def test_allowed_with_warning_keeps_warnings_short(client: FlaskClient) -> None:
    out = post(
        client, review(deployment(annotations={**COMPLETE, "modelgate.dev/certifications": "[]"}))
    )
    assert out["response"]["allowed"] is True
    assert out["response"]["warnings"] == [
        "modelgate: certification iso-42001 expires in 10 days (modelgate.dev/certifications)"
    ]


def test_long_warnings_are_truncated() -> None:
    from webhook.app import shorten_warnings

    out = shorten_warnings(["x" * 1000, "short"] + ["y" * 200] * 40)
    assert all(len(w) <= MAX_WARNING_CHARS for w in out)
    assert out[0].endswith("…")
    assert out[1] == "modelgate: short"
    assert sum(len(w) for w in out) <= 4096
    assert out[-1].endswith("more warnings not shown")


def test_non_model_workload_is_allowed_and_recorded(
    client: FlaskClient, recorder: FakeRecorder
) -> None:
    out = post(client, review(deployment(name="web", model=False, image="nginx:1.27")))
    assert out["response"]["allowed"] is True
    assert len(recorder.events) == 1
    assert recorder.events[0].is_model is False


def test_unsupported_kind_is_allowed_untouched(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    out = post(client, review(cm))
    assert out["response"]["allowed"] is True
    assert engine.calls == []
    assert recorder.events == []


def test_delete_and_connect_are_allowed_without_evaluation(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    old = deployment(annotations={})
    out = post(client, review(None, operation="DELETE", old=old, uid="del-1"))
    assert out["response"] == {"uid": "del-1", "allowed": True}
    out = post(client, review(None, operation="CONNECT", old=None, uid="con-1"))
    assert out["response"]["allowed"] is True
    assert engine.calls == []
    delete = recorder.events[0]
    assert (delete.operation, delete.name, delete.allowed) == ("DELETE", "fraud", True)
    assert delete.is_model is True and delete.records_model is False
    # deleting a kind modelgate does not judge is not recorded at all
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    out = post(client, review(None, operation="DELETE", old=cm))
    assert out["response"]["allowed"] is True
    assert [e.operation for e in recorder.events] == ["DELETE", "CONNECT"]


def test_pod_owned_by_a_controller_is_not_evaluated_again(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "fraud-7d9f-",
            "labels": {"modelgate.dev/model": "true"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "fraud-7d9f",
                    "uid": "u",
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "s", "image": "vllm/vllm-openai:v0.6.0"}]},
    }
    out = post(client, review(pod))
    assert out["response"]["allowed"] is True
    assert engine.calls == []
    # a bare Pod (no controller) is evaluated
    pod["metadata"].pop("ownerReferences")
    out = post(client, review(pod))
    assert out["response"]["allowed"] is False
    assert len(engine.calls) == 1


def _owned_by(obj: dict[str, Any], kind: str, api_version: str = "apps/v1") -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": api_version, "kind": kind, "name": "owner", "uid": "u", "controller": True}
    ]
    return obj


def test_children_of_an_admitted_controller_are_not_evaluated_again(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    # the ReplicaSet a Deployment rolls out (its labels come from the pod template only)
    rs = _owned_by({**deployment("fraud-7d9f", annotations={}), "kind": "ReplicaSet"}, "Deployment")
    # the Job a CronJob starts (its metadata comes from jobTemplate, not from the CronJob)
    job = _owned_by(
        {**deployment("nightly-29123", annotations={}), "apiVersion": "batch/v1", "kind": "Job"},
        "CronJob",
        "batch/v1",
    )
    # the Deployment KServe creates for an InferenceService
    isvc_child = _owned_by(
        deployment("iris-predictor", annotations={}),
        "InferenceService",
        "serving.kserve.io/v1beta1",
    )
    for child in (rs, job, isvc_child):
        out = post(client, review(child))
        assert out["response"]["allowed"] is True, child["kind"]
    assert engine.calls == []
    assert recorder.events == []
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'modelgate_admission_skipped_total{reason="controlled"} 3.0' in metrics


def test_workloads_of_controllers_modelgate_does_not_judge_are_evaluated(
    client: FlaskClient, engine: FakeEngine
) -> None:
    # an Argo Rollout's ReplicaSet: nobody judged the Rollout, so the ReplicaSet is judged
    rs = _owned_by(
        {**deployment("canary-5c4f", annotations={}), "kind": "ReplicaSet"},
        "Rollout",
        "argoproj.io/v1alpha1",
    )
    out = post(client, review(rs))
    assert out["response"]["allowed"] is False
    assert len(engine.calls) == 1


def test_update_of_an_object_being_deleted_is_allowed_without_evaluation(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    # the garbage collector removing the foregroundDeletion finalizer of a non-compliant
    # Deployment (created before modelgate) must not be refused, or it never goes away
    old = deployment(annotations={})
    old["metadata"]["finalizers"] = ["foregroundDeletion"]
    old["metadata"]["deletionTimestamp"] = "2026-11-26T07:00:00Z"
    new = deployment(annotations={})
    new["metadata"]["deletionTimestamp"] = "2026-11-26T07:00:00Z"
    out = post(client, review(new, operation="UPDATE", old=old))
    assert out["response"]["allowed"] is True
    assert engine.calls == []
    assert recorder.events == []
    # the same update of a live object is judged
    new["metadata"].pop("deletionTimestamp")
    out = post(client, review(new, operation="UPDATE", old=old))
    assert out["response"]["allowed"] is False
    assert len(engine.calls) == 1


def test_dry_run_is_decided_but_never_recorded(client: FlaskClient, recorder: FakeRecorder) -> None:
    out = post(client, review(deployment(annotations={}), dry_run=True))
    assert out["response"]["allowed"] is False
    out = post(client, review(deployment(annotations=COMPLETE), dry_run=True))
    assert out["response"]["allowed"] is True
    out = post(client, review(None, operation="DELETE", old=deployment(), dry_run=True))
    assert recorder.events == []


def test_every_decision_is_recorded_with_cluster_and_user(recorder: FakeRecorder) -> None:
    app = make_app(recorder=recorder, cluster_name="prod-eu-1")
    client = app.test_client()
    post(client, review(deployment(annotations=COMPLETE), uid="a", user="alice"))
    post(client, review(deployment(annotations={}), uid="d", user="bob"))
    allowed, denied = recorder.events
    assert (allowed.uid, allowed.user, allowed.cluster, allowed.allowed) == (
        "a",
        "alice",
        "prod-eu-1",
        True,
    )
    assert allowed.is_model and allowed.records_model
    assert allowed.bundle_digest == "sha256:fake"
    assert allowed.engine == "fake"
    assert allowed.workload is not None and allowed.workload["metadata"]["owner"]
    assert (denied.uid, denied.user, denied.allowed) == ("d", "bob", False)
    assert len(denied.violations) == 3
    assert not denied.records_model


def test_recorder_failure_never_breaks_a_response() -> None:
    app = make_app(recorder=FakeRecorder(fail=True))
    out = post(app.test_client(), review(deployment(annotations=COMPLETE)))
    assert out["response"]["allowed"] is True
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "modelgate_recorder_errors_total 1.0" in metrics


# -- engine failure modes -------------------------------------------------------------------


def test_failure_mode_closed_denies_saying_modelgate_could_not_evaluate(
    recorder: FakeRecorder,
) -> None:
    app = make_app(FailingEngine(), recorder, failure_mode="closed")
    out = post(app.test_client(), review(deployment(annotations=COMPLETE)))
    resp = out["response"]
    assert resp["allowed"] is False
    assert "modelgate could not evaluate the policy" in resp["status"]["message"]
    assert "failure mode is closed" in resp["status"]["message"]
    assert recorder.events[0].error and not recorder.events[0].allowed
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_engine_errors_total{error="error"} 1.0' in metrics
    assert 'modelgate_admission_decisions_total{kind="Deployment",result="error"} 1.0' in metrics


def test_failure_mode_open_allows_with_a_warning(recorder: FakeRecorder) -> None:
    app = make_app(FailingEngine(), recorder, failure_mode="open")
    out = post(app.test_client(), review(deployment(annotations={})))
    resp = out["response"]
    assert resp["allowed"] is True
    assert "could not evaluate the policy" in resp["warnings"][0]
    assert recorder.events[0].allowed and recorder.events[0].error


def test_engine_timeout_follows_failure_mode(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(SlowEngine(1.0), policy_timeout_seconds=0.05, failure_mode="closed")
    out = post(app.test_client(), review(deployment(annotations=COMPLETE)))
    assert out["response"]["allowed"] is False
    assert "longer than 0.05s" in out["response"]["status"]["message"]
    assert "policy evaluation failed" in caplog.text
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_engine_errors_total{error="timeout"} 1.0' in metrics


# -- health, readiness, metrics, reload -----------------------------------------------------


def test_readyz_needs_a_bundle_and_the_database(
    client: FlaskClient, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json()["bundle_digest"] == "sha256:fake"
    recorder.is_healthy = False
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["reasons"] == ["the inventory database does not answer"]
    engine.loaded = False
    recorder.is_healthy = True
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["reasons"] == ["no policy bundle is loaded"]
    assert client.get("/healthz").status_code == 200


def test_metrics_count_decisions_by_result_and_kind(client: FlaskClient) -> None:
    post(client, review(deployment(annotations=COMPLETE)))
    post(client, review(deployment(annotations=COMPLETE)))
    post(client, review(deployment(annotations={})))
    post(client, review(deployment(annotations={})), "/validate/warn")
    client.post("/validate", data=b"nope", content_type=JSON)
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    text = resp.get_data(as_text=True)
    assert 'modelgate_admission_decisions_total{kind="Deployment",result="allowed"} 2.0' in text
    assert 'modelgate_admission_decisions_total{kind="Deployment",result="denied"} 1.0' in text
    assert 'modelgate_admission_decisions_total{kind="Deployment",result="warned"} 1.0' in text
    assert "modelgate_admission_duration_seconds_count 4.0" in text
    assert 'modelgate_admission_bad_requests_total{status="400"} 1.0' in text
    assert "modelgate_policy_bundle_loaded 1.0" in text


def test_each_app_has_its_own_registry() -> None:
    a, b = make_app(), make_app()
    post(a.test_client(), review(deployment(annotations=COMPLETE)))
    text = b.test_client().get("/metrics").get_data(as_text=True)
    assert "modelgate_admission_decisions_total{" not in text


def test_reload_counts_success_and_keeps_serving_on_a_broken_bundle(
    app: Flask, client: FlaskClient, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    state = app_state(app)
    assert state.reload_policies() is True
    engine.reload_error = "policies/modelgate/x.rego:3: rego_parse_error"
    assert state.reload_policies() is False
    assert "last good bundle keeps serving" in caplog.text
    out = post(client, review(deployment(annotations=COMPLETE)))
    assert out["response"]["allowed"] is True
    text = client.get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_reloads_total{result="success"} 1.0' in text
    assert 'modelgate_policy_reloads_total{result="failure"} 1.0' in text


def test_background_reloader_polls_the_engine(engine: FakeEngine) -> None:
    import time

    app = create_app(
        Settings(policy_reload_seconds=0.05, approval_source="annotation"),
        engine=engine,
        recorder=FakeRecorder(),
    )
    deadline = time.monotonic() + 5
    while engine.reloads < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    app_state(app).close()
    assert engine.reloads >= 2
    assert engine.closed
    assert engine.watching is not None and engine.watching[0] == 0.05
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_reloads_total{result="success"}' in text


def test_importing_the_app_builds_no_engine_and_no_database() -> None:
    # regopy itself is preloaded by `import modelgate` (policies/_preload.py: a library load,
    # no interpreter); no engine module, no inventory, no SQLAlchemy
    import subprocess
    import sys

    code = (
        "import sys, webhook.app, webhook.serve; "
        "print(sorted(m for m in sys.modules if m.startswith("
        "('policies.engines.embedded', 'policies.engines.opa', 'modelgate.inventory', "
        "'sqlalchemy'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


class CrashingEngine(FakeEngine):
    def evaluate(self, policy_input: Any, *, deadline: float | None = None) -> Any:
        raise KeyError("workload")


class GarbageEngine(FakeEngine):
    def evaluate(self, policy_input: Any, *, deadline: float | None = None) -> Any:
        return None  # not a PolicyResult: a bug of ours must not become a 500


@pytest.mark.parametrize("engine_cls", [CrashingEngine, GarbageEngine])
@pytest.mark.parametrize("mode", ["closed", "open"])
def test_engine_bugs_follow_the_failure_mode_and_never_500(
    engine_cls: type[FakeEngine], mode: str
) -> None:
    app = make_app(engine_cls(), failure_mode=mode)
    out = post(app.test_client(), review(deployment(annotations=COMPLETE), uid="bug"))
    resp = out["response"]
    assert resp["uid"] == "bug"
    assert resp["allowed"] is (mode == "open")
    text = resp["warnings"][0] if mode == "open" else resp["status"]["message"]
    assert "could not evaluate the policy" in text
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_engine_errors_total{error="crash"} 1.0' in metrics


def test_readyz_does_not_hang_on_a_database_that_never_answers() -> None:
    import threading
    import time

    release = threading.Event()
    calls: list[int] = []

    class StuckRecorder(FakeRecorder):
        def healthy(self) -> bool:
            calls.append(1)
            release.wait(10)
            return True

    app = make_app(recorder=StuckRecorder())
    app_state(app).ready_timeout = 0.1
    client = app.test_client()
    started = time.monotonic()
    for _ in range(5):
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.get_json()["reasons"] == ["the inventory database did not answer within 0.1s"]
    assert time.monotonic() - started < 3
    assert len(calls) == 1  # the stuck probe is not stacked up again
    release.set()
    deadline = time.monotonic() + 5
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app_state(app).close()


def test_update_is_evaluated_and_json_charset_is_accepted(
    client: FlaskClient, engine: FakeEngine
) -> None:
    body = review(deployment(annotations={}), operation="UPDATE", old=deployment(annotations={}))
    resp = client.post(
        "/validate", data=json.dumps(body), content_type="application/json; charset=utf-8"
    )
    assert resp.status_code == 200
    assert resp.get_json()["response"]["allowed"] is False
    assert engine.calls[-1]["request"]["operation"] == "UPDATE"


# -- backpressure, caller verification, readiness during a database outage ------------------


def _post_environ(app: Flask, body: Any, **environ: Any) -> Any:
    resp = app.test_client().post(
        "/validate", data=json.dumps(body), content_type=JSON, environ_overrides=environ
    )
    return resp


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_review_that_waited_past_the_queue_budget_is_answered_at_once_as_overloaded(
    mode: str, engine: FakeEngine, recorder: FakeRecorder
) -> None:
    import time

    app = make_app(engine, recorder, failure_mode=mode, queue_seconds=0.5)
    late = time.monotonic() - 1.0  # arrived a second ago, still queued behind others
    resp = _post_environ(
        app, review(deployment(annotations=COMPLETE)), **{"modelgate.arrival": late}
    )
    out = resp.get_json()["response"]
    assert out["allowed"] is (mode == "open")
    text = out["warnings"][0] if mode == "open" else out["status"]["message"]
    assert "overloaded" in text
    assert engine.calls == []  # not evaluated
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_admission_overload_total{reason="queued"} 1.0' in metrics


def test_whether_the_caller_was_verified_goes_into_the_decision_log(
    recorder: FakeRecorder,
) -> None:
    app = make_app(recorder=recorder)
    _post_environ(
        app, review(deployment(annotations=COMPLETE)), **{"modelgate.caller_verified": True}
    )
    _post_environ(app, review(deployment(annotations=COMPLETE)))
    assert [e.caller_verified for e in recorder.events] == [True, None]


def test_reviews_on_the_probe_listener_are_refused(recorder: FakeRecorder) -> None:
    app = make_app(recorder=recorder)
    resp = _post_environ(
        app, review(deployment(annotations=COMPLETE)), **{"modelgate.probe_listener": True}
    )
    assert resp.status_code == 403
    assert "mutual-TLS" in resp.get_json()["error"]
    assert recorder.events == []


class SpoolingRecorder(FakeRecorder):
    def __init__(self, spool_bytes: int) -> None:
        super().__init__()
        self.spool_bytes = spool_bytes

    def stats(self) -> dict[str, Any]:
        return {"spool_bytes": self.spool_bytes, "spool_oldest_seconds": 12.5}


def test_ready_without_database_stays_ready_while_the_spool_has_room(tmp_path: Any) -> None:
    recorder = SpoolingRecorder(spool_bytes=1000)
    recorder.is_healthy = False
    app = make_app(
        recorder=recorder,
        spool_dir=tmp_path,
        ready_without_database=True,
        spool_max_bytes=2000,
    )
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "modelgate_recorder_spool_bytes 1000.0" in metrics
    assert "modelgate_recorder_spool_oldest_seconds 12.5" in metrics
    recorder.spool_bytes = 5000  # full: not ready any more
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["reasons"] == ["the inventory database does not answer"]
    strict = make_app(recorder=recorder, spool_dir=tmp_path)  # the option is off by default
    recorder.spool_bytes = 0
    assert strict.test_client().get("/readyz").status_code == 503


@pytest.mark.parametrize(
    ("error", "label"),
    [
        ("StaleBundle", "stale_bundle"),
        ("EvaluatorCrashed", "evaluator_crash"),
        ("EvaluationTimeout", "timeout"),
    ],
)
def test_engine_failures_are_counted_by_kind(error: str, label: str) -> None:
    import policies.engines.base as base

    class Failing(FakeEngine):
        def evaluate(self, policy_input: Any, *, deadline: float | None = None) -> Any:
            raise getattr(base, error)("boom")

    app = make_app(Failing(), failure_mode="closed")
    out = post(app.test_client(), review(deployment(annotations=COMPLETE)))
    assert out["response"]["allowed"] is False
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert f'modelgate_policy_engine_errors_total{{error="{label}"}} 1.0' in metrics
