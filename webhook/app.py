"""The admission webhook: a Flask app factory.

Each ``POST /validate`` goes through four named steps: parse (:mod:`webhook.review`) ->
extract (:func:`modelgate.workload.extract_workload`) -> evaluate (the policy engine, under a
deadline) -> respond (one AdmissionReview, always well-formed). Every decision that is not a
dry run is handed to the inventory recorder, which must not block.

Routes:

* ``POST /validate``: enforcement comes from the policy input (namespace labels; default
  ``enforce``). The Helm chart sends namespaces labelled ``modelgate.dev/enforcement=warn``
  to ``POST /validate/warn`` instead, because an AdmissionReview carries no namespace labels.
* ``POST /validate/<mode>`` with mode ``enforce``, ``warn`` or ``off`` sets
  ``input.enforcement``.
* ``GET /healthz`` (the process answers), ``GET /readyz`` (a bundle is loaded and the
  database answers), ``GET /metrics`` (Prometheus).

Deadlines: a review has ``MODELGATE_POLICY_TIMEOUT_SECONDS`` from its arrival (the serving
layer, :mod:`webhook.asgi`, passes it in the environ), which the engine enforces; one that
already waited ``MODELGATE_QUEUE_SECONDS`` for a thread is answered at once per the failure
mode, as overloaded.

Metrics and worker processes: each app has its own ``CollectorRegistry``, so with several
workers every worker counts only its own requests. ``modelgate serve`` with more than one
worker therefore switches prometheus_client to multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``);
when that variable is set, ``/metrics`` serves the sum over all workers.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from flask import Flask, Response, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from werkzeug.exceptions import HTTPException

from modelgate.events import AdmissionEvent
from modelgate.policy_input import Enforcement, build_input
from modelgate.settings import Settings
from modelgate.workload import Workload, WorkloadError, extract_workload, skip_reason
from policies.config import PolicyConfig
from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    EvaluatorCrashed,
    PolicyEngine,
    PolicyResult,
    StaleBundle,
)
from webhook.review import (
    OBJECTLESS_OPERATIONS,
    AdmissionRequest,
    MalformedReview,
    ReviewError,
    parse_review,
    request_kind,
    review_response,
)

log = logging.getLogger("modelgate.webhook")

ENFORCEMENT_MODES: tuple[Enforcement, ...] = ("enforce", "warn", "off")
#: Kubernetes truncates longer warnings; keep each one within this many characters.
MAX_WARNING_CHARS = 256
#: The API server keeps at most this many characters of warnings per response.
MAX_WARNINGS_TOTAL_CHARS = 4096
WARNING_PREFIX = "modelgate: "
STATE_KEY = "modelgate"
#: WSGI environ keys the serving layer (webhook/asgi.py) sets for each request
ENVIRON_ARRIVAL = "modelgate.arrival"  # time.monotonic() when the request had arrived
ENVIRON_CALLER_VERIFIED = "modelgate.caller_verified"  # bool | None
ENVIRON_PROBE_LISTENER = "modelgate.probe_listener"  # True on the plain-HTTP probe port
#: /readyz waits at most this long for the database (kubelet probes time out after 1-2 s).
READY_PROBE_TIMEOUT_SECONDS = 0.8


#: An oversized body is read and dropped up to this many bytes before the 413 is sent.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


def _drain_body(environ: Mapping[str, Any], limit: int) -> None:
    stream = environ.get("wsgi.input")
    try:
        remaining = min(int(environ.get("CONTENT_LENGTH") or 0), limit)
    except ValueError:
        return
    if stream is None or remaining <= 0:
        return
    try:
        while remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except (OSError, ValueError):
        return


class Overloaded(EvaluationError):
    """The review was not evaluated: the replica is overloaded."""


def _error_label(error: BaseException) -> str:
    """The ``error`` label of modelgate_policy_engine_errors_total for an evaluation failure."""
    if isinstance(error, EvaluationTimeout):
        return "timeout"
    if isinstance(error, EvaluatorCrashed):
        return "evaluator_crash"
    if isinstance(error, StaleBundle):
        return "stale_bundle"
    if isinstance(error, EvaluationError):
        return "error"
    return "crash"


class EventRecorder(Protocol):
    """What the webhook needs from the inventory recorder (non-blocking ``submit``)."""

    def submit(self, event: AdmissionEvent) -> None: ...

    def healthy(self) -> bool:
        """Readiness: whether the inventory database answers."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to ``timeout`` seconds, then keep what is left (spool) and stop."""
        ...


class ApprovalSnapshot(Protocol):
    """The recorded sign-off the webhook admits from (``modelgate.inventory.registry``):
    in memory, refreshed in the background, never a database round trip per admission."""

    def entry_for(self, workload: Workload) -> Mapping[str, Any]: ...

    def admitting(
        self, entry: Mapping[str, Any], workload: Workload, *, today: date, config: PolicyConfig
    ) -> tuple[Mapping[str, Any], ...]: ...

    def status(self) -> Mapping[str, Any]: ...

    def close(self) -> None: ...


class Metrics:
    """The webhook's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "modelgate_admission_decisions",
            "Admission decisions by result (allowed, denied, warned, error) and kind",
            ["result", "kind"],
            registry=r,
        )
        self.skipped = Counter(
            "modelgate_admission_skipped",
            "Admission requests allowed without evaluation, by reason",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "modelgate_admission_duration_seconds",
            "Time to answer one AdmissionReview (parse to response)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.engine_errors = Counter(
            "modelgate_policy_engine_errors",
            "Policy evaluations that failed or timed out",
            ["error"],
            registry=r,
        )
        self.reloads = Counter(
            "modelgate_policy_reloads",
            "Policy bundle reloads by result (success, failure)",
            ["result"],
            registry=r,
        )
        self.bad_requests = Counter(
            "modelgate_admission_bad_requests",
            "Requests rejected before evaluation (malformed AdmissionReview), by HTTP status",
            ["status"],
            registry=r,
        )
        self.recorder_errors = Counter(
            "modelgate_recorder_errors",
            "Decisions the inventory recorder refused (the response was still sent)",
            registry=r,
        )
        self.overload = Counter(
            "modelgate_admission_overload",
            "Reviews answered at once per the failure mode (or 429) because the replica was "
            "overloaded, by reason",
            ["reason"],
            registry=r,
        )
        self.spool_bytes = Gauge(
            "modelgate_recorder_spool_bytes",
            "Decisions waiting in the spool directory for the database, in bytes",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.spool_age = Gauge(
            "modelgate_recorder_spool_oldest_seconds",
            "Age of the oldest spooled decision file (0 when the spool is empty)",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.bundle_loaded = Gauge(
            "modelgate_policy_bundle_loaded",
            "1 when a policy bundle is loaded",
            registry=r,
            multiprocess_mode="liveall",
        )

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            return generate_latest(combined)
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Decision:
    """The outcome of one admission request: the decision-log event (recorded as is) and
    what only the response needs (the denial message, why it was not evaluated)."""

    event: AdmissionEvent
    message: str | None = None
    #: why the request was allowed without evaluation (``None`` when it was evaluated)
    skipped: str | None = None

    @property
    def allowed(self) -> bool:
        return self.event.allowed

    @property
    def result(self) -> str:
        if self.event.error is not None:
            return "error"
        if not self.event.allowed:
            return "denied"
        return "warned" if self.event.warnings else "allowed"


def format_denial(kind: str, namespace: str, name: str, problems: list[str]) -> str:
    """One message that lists every violation: ``modelgate denied Deployment ml/x: 2 problems:
    (1) ... (2) ...``."""
    where = f"{namespace}/{name}" if namespace else name
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    listed = " ".join(f"({i}) {p.strip()}" for i, p in enumerate(problems, 1))
    return f"modelgate denied {kind} {where}: {count} {noun}: {listed}"


def shorten_warnings(warnings: list[str]) -> list[str]:
    """Prefix, truncate to :data:`MAX_WARNING_CHARS` and cap the total like the API server."""
    out: list[str] = []
    total = 0
    for i, w in enumerate(warnings):
        text = " ".join(w.split())
        if not text.startswith(WARNING_PREFIX.strip()):
            text = WARNING_PREFIX + text
        if len(text) > MAX_WARNING_CHARS:
            text = text[: MAX_WARNING_CHARS - 1] + "…"
        if total + len(text) > MAX_WARNINGS_TOTAL_CHARS - 64:
            out.append(f"{WARNING_PREFIX}{len(warnings) - i} more warnings not shown")
            break
        out.append(text)
        total += len(text)
    return out


class WebhookState:
    """Everything one app instance owns: engine, recorder, metrics, background reloader."""

    def __init__(
        self,
        settings: Settings,
        engine: PolicyEngine,
        recorder: EventRecorder,
        *,
        reload_in_background: bool = True,
        registry: ApprovalSnapshot | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.recorder = recorder
        self.registry = registry
        self.metrics = Metrics()
        self._probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelgate-ready")
        self._probe_lock = threading.Lock()
        self._probe: Future[Any] | None = None
        self.ready_timeout = READY_PROBE_TIMEOUT_SECONDS
        #: the caller_verified of the request this thread is deciding
        self._caller_verified: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
            "caller_verified", default=None
        )
        self._last_reload_error: str | None = None
        self.metrics.bundle_loaded.set(1 if self._engine_ready() else 0)
        if reload_in_background and settings.policy_reload_seconds > 0:
            engine.start_watching(settings.policy_reload_seconds, on_reload=self.on_reload)

    # -- policy reload -------------------------------------------------------------------

    def on_reload(self, changed: bool, error: BaseException | None) -> None:
        """After each check of the policy directory: count, log, update the gauge."""
        if error is not None:
            self.metrics.reloads.labels("failure").inc()
            if isinstance(error, BundleError):
                if str(error) != self._last_reload_error:
                    log.error(
                        "policy bundle rejected, the last good bundle keeps serving: %s", error
                    )
            else:
                log.error("policy reload failed: %s", error)
            self._last_reload_error = str(error)
            return
        self._last_reload_error = None
        if changed:
            self.metrics.reloads.labels("success").inc()
            log.info("policy bundle reloaded (digest %s)", self.engine.bundle_digest)
        self.metrics.bundle_loaded.set(1 if self._engine_ready() else 0)

    def reload_policies(self) -> bool:
        """Check the bundle now (as the watcher does); True when a new bundle serves."""
        try:
            changed = self.engine.reload_if_changed()
        except Exception as e:
            self.on_reload(False, e)
            return False
        self.on_reload(changed, None)
        return changed

    # -- readiness -----------------------------------------------------------------------

    def _engine_ready(self) -> bool:
        try:
            return bool(self.engine.ready())
        except Exception:
            return False

    def not_ready_reasons(self) -> list[str]:
        reasons: list[str] = []
        if not self._engine_ready():
            detail = self.engine.last_error or self._last_reload_error
            reasons.append(
                f"no policy bundle is loaded: {detail}" if detail else "no policy bundle is loaded"
            )
        # one probe at a time, in its own thread, bounded: a database that swallows packets
        # must neither hang the kubelet's probe nor pile up threads
        with self._probe_lock:
            if self._probe is None or self._probe.done():
                self._probe = self._probe_pool.submit(self.recorder.healthy)
            pending = self._probe
        database: str | None = None
        try:
            ok = bool(pending.result(timeout=self.ready_timeout))
        except FutureTimeout:
            database = f"the inventory database did not answer within {self.ready_timeout:g}s"
        except Exception as e:
            database = f"the inventory database does not answer: {e}"
        else:
            if not ok:
                database = "the inventory database does not answer"
        if database is not None and not self._spool_keeps_ready():
            reasons.append(database)
        if self.registry is not None and not self.registry.status().get("loaded"):
            reasons.append(
                f"no approval snapshot loaded yet: {self.registry.status().get('error')}"
            )
        return reasons

    def spool_usage(self) -> tuple[int, float] | None:
        """(bytes, oldest age in seconds) of the recorder's spool; None without one."""
        stats = getattr(self.recorder, "stats", None)
        if stats is None or self.settings.spool_dir is None:
            return None
        try:
            values = stats()
            return int(values["spool_bytes"]), float(values["spool_oldest_seconds"])
        except Exception:
            return None

    def _spool_keeps_ready(self) -> bool:
        """MODELGATE_READY_WITHOUT_DATABASE: a database outage leaves the replica ready while
        decisions go to a spool that has room (they are replayed when it is back)."""
        if not self.settings.ready_without_database:
            return False
        usage = self.spool_usage()
        return usage is not None and usage[0] < self.settings.spool_max_bytes

    # -- the admission decision ----------------------------------------------------------

    def evaluate(self, policy_input: Mapping[str, Any], deadline: float) -> PolicyResult:
        """Run the engine, which enforces ``deadline`` (it stops the evaluation there); an
        answer that still comes late is not used either."""
        limit = self.settings.policy_timeout_seconds
        try:
            result = self.engine.evaluate(policy_input, deadline=deadline)
        except EvaluationTimeout as e:
            raise EvaluationTimeout(f"policy evaluation took longer than {limit:g}s ({e})") from e
        if time.monotonic() > deadline + 0.05:
            raise EvaluationTimeout(f"policy evaluation took longer than {limit:g}s")
        return result

    def _event(
        self,
        req: AdmissionRequest,
        kind: str,
        namespace: str,
        name: str,
        *,
        allowed: bool,
        is_model: bool,
        workload: Workload | None = None,
        violations: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        enforcement: str = "enforce",
        bundle_digest: str = "",
        error: str | None = None,
    ) -> AdmissionEvent:
        """The decision-log event of ``req`` with this outcome (the one place events are
        made)."""
        user_info = req.get("userInfo") or {}
        return AdmissionEvent(
            time=datetime.now(UTC),
            uid=req["uid"],
            user=str(user_info.get("username") or ""),
            operation=req["operation"],
            cluster=self.settings.cluster_name,
            kind=kind,
            namespace=namespace,
            name=name,
            allowed=allowed,
            is_model=is_model,
            violations=violations,
            warnings=warnings,
            enforcement=enforcement,
            bundle_digest=bundle_digest,
            engine=self.engine.name,
            error=error,
            workload=workload,
            caller_verified=self._caller_verified.get(),
        )

    def _is_model_kind(self, workload: Workload, kind: str) -> bool:
        """A model without evaluating the policy (labelled, or a model kind of the bundle)."""
        return workload["model_label"] or self.engine.config.is_model_kind(kind)

    def decide(
        self,
        req: AdmissionRequest,
        enforcement: Enforcement | None,
        *,
        arrival: float | None = None,
        caller_verified: bool | None = None,
    ) -> Decision:
        """The decision for ``req``; ``arrival`` is when the request reached the server (its
        deadline counts from there), ``caller_verified`` goes into the decision log."""
        self._caller_verified.set(caller_verified)
        arrival = time.monotonic() if arrival is None else arrival
        operation = req["operation"]
        kind = request_kind(req)
        namespace = req.get("namespace") or ""
        name = req.get("name") or ""
        if operation in OBJECTLESS_OPERATIONS:
            old = req.get("oldObject")
            reason = skip_reason(kind, old if isinstance(old, dict) else None)
            return self._unevaluated(req, kind, namespace, name, reason or operation.lower())
        obj = req.get("object")
        if not isinstance(obj, dict):  # parse_review guarantees it; keep mypy and us honest
            raise MalformedReview(f"request.object is required for {operation}")
        reason = skip_reason(kind, obj)
        if reason is not None:
            event = self._event(req, kind, namespace, name, allowed=True, is_model=False)
            return Decision(event=event, skipped=reason)
        if "kind" not in obj:
            obj = {**obj, "kind": kind}
        try:
            workload = extract_workload(obj, namespace or None)
        except WorkloadError as e:
            raise MalformedReview(f"request.object is not a Kubernetes object: {e}") from e
        namespace = workload["namespace"] or namespace
        name = workload["name"] or name
        waited = time.monotonic() - arrival
        if waited > self.settings.queue_seconds:
            # queued behind other reviews for longer than the budget: answer now instead of
            # evaluating past the API server's timeout (explicit backpressure)
            self.metrics.overload.labels("queued").inc()
            busy = Overloaded(
                f"modelgate is overloaded: the review waited {waited:.1f}s for a free thread"
            )
            return self.failure_decision(req, kind, namespace, name, workload, busy)
        registry = self.registry.entry_for(workload) if self.registry is not None else None
        policy_input = build_input(
            request=req,
            workload=workload,
            mode="admission",
            enforcement=enforcement,
            registry=registry,
        )
        deadline = arrival + self.settings.policy_timeout_seconds
        try:
            result = self.evaluate(policy_input, deadline)
        except Exception as e:  # EvaluationError or an engine bug: same failure mode
            label = _error_label(e)
            if label == "crash":
                log.exception("policy engine crashed")
            self.metrics.engine_errors.labels(label).inc()
            return self.failure_decision(req, kind, namespace, name, workload, e)
        problems = list(result.deny)
        event = self._event(
            req,
            kind,
            namespace,
            name,
            allowed=result.allowed,
            is_model=result.is_model,
            workload=workload,
            violations=tuple(result.violations) or tuple(problems),
            warnings=tuple(result.warn),
            enforcement=result.enforcement or enforcement or "enforce",
            bundle_digest=result.bundle_digest or self._digest(),
        )
        if (
            registry is not None
            and self.registry is not None
            and result.allowed
            and result.is_model
        ):
            admitted = self.registry.admitting(
                registry,
                workload,
                today=date.fromisoformat(policy_input["today"]),
                config=self.engine.config,
            )
            event = replace(event, approvals=tuple(dict(a) for a in admitted))
        message = None if result.allowed else format_denial(kind, namespace, name, problems)
        return Decision(event=event, message=message)

    def _digest(self) -> str:
        try:
            return self.engine.bundle_digest
        except Exception:
            return ""

    def _unevaluated(
        self, req: AdmissionRequest, kind: str, namespace: str, name: str, reason: str
    ) -> Decision:
        old = req.get("oldObject")
        is_model = False
        if isinstance(old, dict):
            try:
                w = extract_workload({**old, "kind": old.get("kind") or kind}, namespace or None)
            except WorkloadError:
                pass
            else:
                name = name or w["name"]
                is_model = self._is_model_kind(w, kind)
        event = self._event(req, kind, namespace, name, allowed=True, is_model=is_model)
        return Decision(event=event, skipped=reason)

    def failure_decision(
        self,
        req: AdmissionRequest,
        kind: str,
        namespace: str,
        name: str,
        workload: Workload,
        error: Exception,
    ) -> Decision:
        where = f"{namespace}/{name}" if namespace else name
        detail = str(error) or type(error).__name__
        log.error("policy evaluation failed for %s %s: %s", kind, where, detail)
        is_model = self._is_model_kind(workload, kind)
        if self.settings.failure_mode == "open":
            warning = (
                f"modelgate could not evaluate the policy ({detail}); "
                "admitted unchecked because the failure mode is open"
            )
            event = self._event(
                req,
                kind,
                namespace,
                name,
                allowed=True,
                is_model=is_model,
                workload=workload,
                warnings=(warning,),
                bundle_digest=self._digest(),
                error=detail,
            )
            return Decision(event=event)
        event = self._event(
            req,
            kind,
            namespace,
            name,
            allowed=False,
            is_model=is_model,
            workload=workload,
            bundle_digest=self._digest(),
            error=detail,
        )
        message = (
            f"modelgate could not evaluate the policy for {kind} {where} ({detail}); "
            "denied because the failure mode is closed. Retry, or ask the platform team "
            "to check the modelgate webhook."
        )
        return Decision(event=event, message=message)

    def record(self, req: AdmissionRequest, decision: Decision) -> None:
        """Hand the decision to the inventory; never let the recorder break a response.
        Dry runs are never recorded; of the requests allowed without evaluation only
        deletions (and CONNECTs) of judged kinds are."""
        if req.get("dryRun"):
            return
        if decision.skipped is not None and decision.skipped not in ("delete", "connect"):
            return
        try:
            self.recorder.submit(decision.event)
        except Exception as e:
            self.metrics.recorder_errors.inc()
            log.error("could not record the decision for %s: %s", req["uid"], e)

    def close(self, timeout: float = 5.0) -> None:
        """Stop reloading, flush the recorder (at most ``timeout`` s), close the engine."""
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        if self.registry is not None:
            self.registry.close()
        try:
            self.recorder.close(timeout=timeout)
        except Exception as e:
            log.warning("error while closing the recorder: %s", e)
        try:
            self.engine.close()
        except Exception as e:
            log.warning("error while closing the policy engine: %s", e)


def _default_engine(settings: Settings) -> PolicyEngine:
    from modelgate.engine import engine_for  # lazily: nothing is built at import time

    return engine_for(settings)


def _default_recorder(settings: Settings) -> EventRecorder:
    from modelgate.inventory.recorder import Recorder

    # retry the database at least every 5 s, so a spool is replayed within seconds of its
    # return even without traffic or readiness probes; the transactions run in a process of
    # their own, so their Python does not take the interpreter lock from the reviews
    recorder: EventRecorder = Recorder(settings, max_backoff=5.0, writer_process=True)
    return recorder


def _default_registry(settings: Settings) -> ApprovalSnapshot | None:
    """The approval snapshot for ``MODELGATE_APPROVAL_SOURCE=inventory`` (None: annotation)."""
    if settings.approval_source != "inventory":
        return None
    from modelgate.inventory.registry import ApprovalRegistry

    registry: ApprovalSnapshot = ApprovalRegistry.from_settings(settings).start()
    return registry


def create_app(
    settings: Settings | None = None,
    *,
    engine: PolicyEngine | None = None,
    recorder: EventRecorder | None = None,
    reload_in_background: bool = True,
    registry: ApprovalSnapshot | None = None,
) -> Flask:
    """Build the webhook app. The engine, recorder and approval snapshot are created here
    unless injected."""
    settings = settings or Settings.from_env()
    engine = engine if engine is not None else _default_engine(settings)
    recorder = recorder if recorder is not None else _default_recorder(settings)
    if registry is None:
        registry = _default_registry(settings)
    state = WebhookState(
        settings, engine, recorder, reload_in_background=reload_in_background, registry=registry
    )

    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STATE_KEY] = state

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        code = e.code or 500
        if request.path.startswith("/validate"):
            state.metrics.bad_requests.labels(str(code)).inc()
        message = e.description or e.name
        if code == 413:
            message = f"request body exceeds the limit of {settings.max_request_bytes} bytes"
            # read (and drop) what the client is still sending, bounded, so it gets the 413
            # instead of a connection reset from unread data on close
            _drain_body(request.environ, DRAIN_LIMIT_BYTES)
            response = jsonify(error=message)
            response.headers["Connection"] = "close"
            return response, code
        return jsonify(error=message), code

    def validate(enforcement: Enforcement | None) -> tuple[Response, int]:
        started = time.perf_counter()
        environ = request.environ
        if environ.get(ENVIRON_PROBE_LISTENER):
            state.metrics.bad_requests.labels("403").inc()
            return (
                jsonify(error="admission reviews are answered only on the mutual-TLS port"),
                403,
            )
        arrival = environ.get(ENVIRON_ARRIVAL)
        caller_verified = environ.get(ENVIRON_CALLER_VERIFIED)
        try:
            body = request.get_data(cache=False)
            req = parse_review(body, request.content_type, max_bytes=settings.max_request_bytes)
            try:
                decision = state.decide(
                    req,
                    enforcement,
                    arrival=arrival if isinstance(arrival, float) else None,
                    caller_verified=caller_verified if isinstance(caller_verified, bool) else None,
                )
            except ReviewError:
                raise
            except Exception as e:  # a bug of ours must still produce a well-formed answer
                log.exception("admission decision crashed")
                state.metrics.engine_errors.labels("crash").inc()
                kind = request_kind(req)
                namespace = req.get("namespace") or ""
                name = req.get("name") or ""
                workload_stub: Workload = extract_workload(
                    {"kind": kind or "Unknown", "metadata": {}}, namespace or None
                )
                decision = state.failure_decision(req, kind, namespace, name, workload_stub, e)
        except ReviewError as e:
            state.metrics.bad_requests.labels(str(e.status)).inc()
            return jsonify(error=str(e)), e.status
        if decision.skipped is not None:
            state.metrics.skipped.labels(decision.skipped).inc()
        else:
            state.metrics.decisions.labels(decision.result, decision.event.kind).inc()
        state.record(req, decision)
        review = review_response(
            req["uid"],
            decision.allowed,
            message=decision.message,
            warnings=shorten_warnings(list(decision.event.warnings)),
        )
        state.metrics.latency.observe(time.perf_counter() - started)
        return jsonify(review), 200

    @app.post("/validate")
    def validate_default() -> tuple[Response, int]:
        return validate(None)

    @app.post("/validate/<mode>")
    def validate_mode(mode: str) -> tuple[Response, int]:
        if mode not in ENFORCEMENT_MODES:
            state.metrics.bad_requests.labels("404").inc()
            allowed = ", ".join(ENFORCEMENT_MODES)
            return jsonify(error=f"unknown enforcement mode {mode!r}; use one of {allowed}"), 404
        chosen: Enforcement = mode  # type: ignore[assignment]
        return validate(chosen)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        reasons = state.not_ready_reasons()
        approvals = dict(state.registry.status()) if state.registry is not None else None
        if reasons:
            return jsonify(status="not ready", reasons=reasons, approvals=approvals), 503
        return jsonify(status="ready", bundle_digest=state._digest(), approvals=approvals), 200

    @app.get("/metrics")
    def metrics() -> Response:
        usage = state.spool_usage()
        if usage is not None:
            state.metrics.spool_bytes.set(usage[0])
            state.metrics.spool_age.set(usage[1])
        return Response(state.metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    return app


def app_state(app: Flask) -> WebhookState:
    state = app.extensions[STATE_KEY]
    assert isinstance(state, WebhookState)
    return state
