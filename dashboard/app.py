"""The dashboard's Flask app: server-rendered pages, and the inventory API under ``/api/v1``
(:mod:`dashboard.api`). The pages write nothing but sign-off (the approve / reject / revoke
forms of a version's page, CSRF-protected, by the same rules as the API).

``create_app`` builds the app, a :class:`~modelgate.inventory.db.Database` (an engine that
connects on first use) and the identity :class:`~modelgate.identity.Access`; importing this
module connects to nothing. Every page and API call needs an authenticated caller
(:mod:`dashboard.auth`), except ``/healthz``, ``/readyz`` and the OpenAPI document. A
database that does not answer is a 503 page (or JSON error under ``/api/``) saying so, never a
traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.wrappers import Response as BaseResponse

from dashboard import capacity as capacity_routes
from dashboard import data
from dashboard import signoff as views
from dashboard.api import CONTEXT_KEY, ApiContext, api
from dashboard.auth import CSRFError, DashboardAuth, check_csrf, csrf_token
from modelgate import __version__, capacity
from modelgate.approvals import SignOffRefused
from modelgate.identity import (
    Access,
    Forbidden,
    Identity,
    IdentityUnavailable,
    Permission,
    Unauthenticated,
    access_for,
)
from modelgate.inventory import signoff
from modelgate.inventory.db import (
    Database,
    InventoryError,
    SchemaMissing,
    missing_sqlite_file,
    redact,
)
from modelgate.settings import Settings
from policies.config import PolicyConfig

log = logging.getLogger("modelgate.dashboard")

STATE_KEY = "modelgate-dashboard"
ACCESS_KEY = "modelgate-access"
#: endpoints that answer without authentication
OPEN_ENDPOINTS = frozenset(
    {"healthz", "readyz", "static", "favicon", "api.openapi", "login", "auth_callback"}
)
HERE = Path(__file__).resolve().parent
FINDING_STATUSES = ("open", "resolved")


def _api() -> bool:
    return request.path.startswith("/api/")


def _safe_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) link (model cards, runs, sources), else None."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return None


def _when(value: str | None) -> str:
    """An ISO 8601 timestamp as ``YYYY-MM-DD HH:MM UTC`` (``—`` when absent)."""
    if not value:
        return "—"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    """``1 source``, ``2 sources``, ``0 findings``."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


_CODE_SPAN = re.compile(r"`([^`]+)`")


def _code_spans(text: str | None) -> Markup:
    """Plain text with its ``backtick`` spans shown as code (escaped; no literal backticks)."""
    escaped = str(escape(text or ""))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))


def _page_arg() -> int:
    raw = request.args.get("page", "1").strip() or "1"
    try:
        page = int(raw)
    except ValueError as e:
        raise BadRequest(f"page must be a positive integer, not {raw!r}") from e
    if page < 1:
        raise BadRequest(f"page must be a positive integer, not {raw!r}")
    return page


def _allowed_arg() -> bool | None:
    raw = request.args.get("decision", "").strip().lower()
    if raw in ("", "all"):
        return None
    if raw in ("allowed", "true"):
        return True
    if raw in ("denied", "false"):
        return False
    raise BadRequest(f"decision must be 'allowed', 'denied' or 'all', not {raw!r}")


def _status_arg() -> str | None:
    raw = request.args.get("status", "open").strip().lower()
    if raw in ("", "all"):
        return None
    if raw not in FINDING_STATUSES:
        raise BadRequest(f"status must be 'open', 'resolved' or 'all', not {raw!r}")
    return raw


def _text_arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value or None


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Callable[[], datetime] | None = None,
    access: Access | None = None,
) -> Flask:
    """Build the dashboard for ``settings`` (``MODELGATE_*`` variables when omitted).
    ``clock`` is the time the pages, the sign-off rules and token expiry are judged at."""
    settings = settings or Settings.from_env()
    db = database if database is not None else Database(settings.database_url)
    now = clock or (lambda: datetime.now(UTC))
    config = PolicyConfig.load(settings.policy_dir)
    if access is None:
        access = access_for(settings, clock=lambda: now().timestamp())

    app = Flask(
        "dashboard",
        root_path=str(HERE),
        template_folder="templates",
        static_folder="static",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STATE_KEY] = db
    app.extensions[ACCESS_KEY] = access
    auth = DashboardAuth(app, settings, access)
    app.jinja_env.globals.update(
        version=__version__, safe_url=_safe_url, plural=_plural, csrf_token=csrf_token
    )
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["code_spans"] = _code_spans
    app.jinja_env.filters["cores"] = capacity.format_cores
    app.jinja_env.filters["bytes"] = capacity.format_bytes
    interval = timedelta(seconds=settings.scan_interval_seconds)

    def query_with(**changes: Any) -> str:
        args = {k: v for k, v in request.args.items() if v}
        args.update({k: str(v) for k, v in changes.items() if v is not None})
        for k, v in changes.items():
            if v is None:
                args.pop(k, None)
        return "?" + urlencode(args)

    app.jinja_env.globals["query_with"] = query_with

    @app.after_request
    def security_headers(response: Response) -> Response:
        # no scripts, no frames, nothing fetched from elsewhere: a strict policy costs nothing
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "private, no-store")
        if response.status_code == 503:
            response.headers.setdefault("Retry-After", "10")
        return response

    # ------------------------------------------------------------------ errors

    def _error(code: int, title: str, message: str) -> tuple[Response | str, int]:
        if _api():
            return jsonify(error=message), code
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(InventoryError)
    def database_error(e: InventoryError) -> tuple[Response | str, int]:
        log.warning("inventory database error: %s", e)
        if isinstance(e, SchemaMissing):
            message = f"{e}"
            title = "Inventory not initialised"
        else:
            message = (
                f"The inventory database ({redact(db.url)}) does not answer. The dashboard "
                "shows data again as soon as it is reachable; no action is needed here."
            )
            title = "Database unavailable"
        return _error(503, title, message)

    @app.errorhandler(Unauthenticated)
    def unauthenticated(e: Unauthenticated) -> tuple[Response | str, int]:
        response, code = _error(401, "Sign-in required", str(e))
        if isinstance(response, Response):
            response.headers["WWW-Authenticate"] = _challenge(str(e))
        return response, code

    @app.errorhandler(Forbidden)
    def forbidden(e: Forbidden) -> tuple[Response | str, int]:
        return _error(403, "Not allowed", str(e))

    @app.errorhandler(SignOffRefused)
    def refused(e: SignOffRefused) -> tuple[Response | str, int]:
        return _error(403, "Not allowed", str(e))

    @app.errorhandler(IdentityUnavailable)
    def identity_down(e: IdentityUnavailable) -> tuple[Response | str, int]:
        log.warning("identity provider unavailable: %s", e)
        return _error(503, "Sign-in unavailable", f"cannot check credentials now: {e}")

    @app.errorhandler(signoff.NotFound)
    def sign_off_not_found(e: signoff.NotFound) -> tuple[Response | str, int]:
        return _error(404, "Not found", str(e))

    @app.errorhandler(signoff.Conflict)
    def sign_off_conflict(e: signoff.Conflict) -> tuple[Response | str, int]:
        return _error(409, "Conflict", str(e))

    @app.errorhandler(signoff.InvalidSignOff)
    def sign_off_invalid(e: signoff.InvalidSignOff) -> tuple[Response | str, int]:
        return _error(400, "Bad request", str(e))

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError) -> tuple[Response | str, int]:
        return _error(400, "Bad request", f"{e}: reload the page and try again")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response | str, int]:
        code = e.code or 500
        return _error(code, e.name, e.description or e.name)

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> tuple[Response | str, int]:
        log.exception("unexpected error on %s", request.path)
        return _error(500, "Internal error", "The dashboard failed to build this page.")

    @app.before_request
    def authenticate() -> BaseResponse | None:
        """Every page and API call needs a caller; pages need the viewer role."""
        if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
            return None
        api_call = _api()
        try:
            g.identity = auth.identify(api=api_call)
        except Unauthenticated:
            if not api_call and auth.sign_in is not None and request.method == "GET":
                return redirect(url_for("login", next=request.full_path.rstrip("?")))
            raise
        if not str(request.endpoint).startswith("api."):  # the API checks per route
            access.require(g.identity, Permission.read)
        return None

    @app.before_request
    def refuse_missing_sqlite_file() -> None:
        """A read-only service never creates the SQLite file a mistyped URL names."""
        if request.endpoint in OPEN_ENDPOINTS and request.endpoint != "readyz":
            return
        path = missing_sqlite_file(db.url)
        if path is not None:
            raise SchemaMissing(
                f"no inventory database at {redact(db.url)} (file {path} does not exist): "
                "run `modelgate db upgrade` to create it, or set MODELGATE_DATABASE_URL"
            )

    # ------------------------------------------------------------------ health

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """No icon (the pages declare an empty one; browsers still ask for it on JSON)."""
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", version=__version__)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        if db.ping():  # (a missing SQLite file is refused before this runs)
            return jsonify(status="ok", database="ok"), 200
        return jsonify(status="unavailable", database="unavailable"), 503

    # ------------------------------------------------------------------ pages

    @app.get("/")
    def overview_page() -> str:
        return render_template(
            "overview.html", o=data.overview(db, now(), config, interval), nav="overview"
        )

    def _models() -> tuple[list[Any], dict[str, str | None]]:
        filters = {
            "q": _text_arg("q"),
            "tier": _text_arg("tier"),
            "status": _text_arg("status"),
            "cluster": _text_arg("cluster"),
            "namespace": _text_arg("namespace"),
            "owner": _text_arg("owner"),
        }
        rows = data.model_list(
            db,
            search=filters["q"],
            risk_tier=filters["tier"],
            compliance_status=filters["status"],
            cluster=filters["cluster"],
            namespace=filters["namespace"],
            owner=filters["owner"],
        )
        return list(rows), filters

    @app.get("/models")
    def models_page() -> str:
        rows, filters = _models()
        return render_template(
            "models.html",
            models=rows,
            filters=filters,
            tiers=data.risk_tiers_highest_first(config),
            statuses=config.compliance_statuses,
            options=data.model_filter_options(db),
            nav="models",
        )

    def _detail(name: str) -> dict[str, Any]:
        detail = data.model_detail(db, name, now(), config, interval)
        if detail is None:
            raise NotFound(f"no model named {name!r} in the inventory")
        return detail

    @app.get("/models/<path:name>")
    def model_page(name: str) -> str:
        detail = _detail(name)
        states = views.sign_off_states(db, name, now().astimezone(UTC).date(), config)
        return render_template("model.html", m=detail, sign_off=states, nav="models")

    def _decisions() -> dict[str, Any]:
        page = _page_arg()
        allowed = _allowed_arg()
        namespace = _text_arg("namespace")
        model = _text_arg("model")
        result = data.decision_page(
            db, allowed=allowed, namespace=namespace, page=page, model=model
        )
        result["filters"] = {
            "decision": {True: "allowed", False: "denied", None: "all"}[allowed],
            "namespace": namespace,
            "model": model,
        }
        return result

    @app.get("/decisions")
    def decisions_page() -> str:
        return render_template("decisions.html", d=_decisions(), nav="decisions")

    def _findings() -> dict[str, Any]:
        status = _status_arg()
        filters = {
            "type": _text_arg("type"),
            "cluster": _text_arg("cluster"),
            "namespace": _text_arg("namespace"),
            "severity": _text_arg("severity"),
            "owner": _text_arg("owner"),
        }
        if filters["severity"] and filters["severity"] not in config.severities:
            raise BadRequest(
                f"severity must be one of {', '.join(config.severities)}, "
                f"not {filters['severity']!r}"
            )
        if filters["type"] and filters["type"] not in data.FINDING_TYPES:
            raise BadRequest(
                f"type must be one of {', '.join(data.FINDING_TYPES)}, not {filters['type']!r}"
            )
        result = data.finding_list(
            db,
            status=status,
            type_=filters["type"],
            page=_page_arg(),
            config=config,
            cluster=filters["cluster"],
            namespace=filters["namespace"],
            severity=filters["severity"],
            owner=filters["owner"],
        )
        result["filters"] = {"status": status or "all", **filters}
        return result

    @app.get("/findings")
    def findings_page() -> str:
        return render_template(
            "findings.html", f=_findings(), types=data.FINDING_TYPES, nav="findings"
        )

    # ------------------------------------------------------------------ the API

    app.register_blueprint(capacity_routes.blueprint(db, now, interval))

    def lists(kind: str) -> Any:
        if kind == "models":
            return _models()[0]
        if kind == "decisions":
            return _decisions()
        return _findings()

    def require(identity: Identity, permission: Permission, name: str = "") -> None:
        access.require(identity, permission, name)

    app.extensions[CONTEXT_KEY] = ApiContext(db, config, now, require, lists, interval)
    app.register_blueprint(api)

    # ------------------------------------------------------------------ sign-off pages

    def _today() -> Any:
        return now().astimezone(UTC).date()

    def _can(permission: Permission, name: str = "") -> bool:
        try:
            return access.allowed(g.identity, permission, name)
        except IdentityUnavailable:
            return False

    @app.get("/reviews")
    def reviews_page() -> str:
        access.require(g.identity, Permission.read_approvals)
        waiting = views.waiting_for_review(db, _today(), config)
        return render_template("reviews.html", waiting=waiting, nav="reviews")

    @app.get("/models/<name>/versions/<version>")
    def version_page(name: str, version: str) -> str:
        access.require(g.identity, Permission.read_approvals, name)
        v = views.version_detail(db, name, version, _today(), config)
        return render_template(
            "version.html",
            v=v,
            nav="models",
            can_approve=_can(Permission.approve, name),
            today=_today().isoformat(),
        )

    @app.post("/models/<name>/versions/<version>/approvals")
    def version_decide(name: str, version: str) -> BaseResponse:
        check_csrf()
        access.require(g.identity, Permission.approve, name)
        decision = request.form.get("decision", "")
        evidence = [e.strip() for e in request.form.get("evidence", "").split() if e.strip()]
        signoff.record_approval(
            db,
            model=name,
            version=version,
            decision=decision,
            actor=g.identity,
            reason=request.form.get("reason", ""),
            evidence=evidence,
            expires=request.form.get("expires", "").strip() or None,
            config=config,
            today=_today(),
            now=now(),
        )
        return redirect(url_for("version_page", name=name, version=version), code=303)

    @app.post("/approvals/<int:approval_id>/revoke")
    def approval_revoke(approval_id: int) -> BaseResponse:
        check_csrf()
        access.require(g.identity, Permission.approve)
        record = signoff.revoke_approval(
            db,
            approval_id,
            actor=g.identity,
            reason=request.form.get("reason", ""),
            today=_today(),
            now=now(),
        )
        return redirect(
            url_for("version_page", name=record["model"], version=record["version"]), code=303
        )

    # ------------------------------------------------------------------ browser sign-in

    @app.get("/login")
    def login() -> BaseResponse | tuple[str, int]:
        if auth.sign_in is None:
            return render_template(
                "error.html",
                code=404,
                title="No browser sign-in",
                message="Browser sign-in is not configured (MODELGATE_OIDC_CLIENT_ID); "
                "call the API with a bearer token or use the authenticating proxy.",
            ), 404
        response: BaseResponse = auth.begin(request.args.get("next", "/"))
        return response

    @app.get("/auth/callback")
    def auth_callback() -> BaseResponse:
        if auth.sign_in is None:
            raise NotFound("browser sign-in is not configured")
        return redirect(auth.finish(), code=303)

    @app.post("/logout")
    def logout() -> BaseResponse:
        check_csrf()
        auth.sign_out()
        return redirect(url_for("overview_page"), code=303)

    app.jinja_env.globals["signed_in"] = lambda: g.get("identity")
    app.jinja_env.globals["can_sign_out"] = lambda: bool(
        g.get("identity") is not None and g.identity.source == "session"
    )
    return app


def _challenge(reason: str) -> str:
    """The ``WWW-Authenticate`` header of a 401 (the reason, never the token)."""
    if reason.startswith("no credentials"):
        return 'Bearer realm="modelgate"'
    printable = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)  # header-safe
    safe = printable.replace("\\", "").replace('"', "'")[:200]
    return f'Bearer realm="modelgate", error="invalid_token", error_description="{safe}"'
