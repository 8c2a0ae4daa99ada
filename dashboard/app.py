"""The dashboard's Flask app: server-rendered pages plus the same data as JSON under
``/api/``. Read-only: no route writes to the inventory.

``create_app`` builds the app and a :class:`~modelgate.inventory.db.Database` (an engine
that connects on first use); importing this module connects to nothing. A database that
does not answer is a 503 page (or JSON error under ``/api/``) saying so, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, render_template, request
from markupsafe import Markup, escape
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from dashboard import capacity as capacity_routes
from dashboard import data
from modelgate import __version__, capacity
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
) -> Flask:
    """Build the dashboard for ``settings`` (``MODELGATE_*`` variables when omitted)."""
    settings = settings or Settings.from_env()
    db = database if database is not None else Database(settings.database_url)
    now = clock or (lambda: datetime.now(UTC))
    config = PolicyConfig.load(settings.policy_dir)

    app = Flask(
        "dashboard",
        root_path=str(HERE),
        template_folder="templates",
        static_folder="static",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STATE_KEY] = db
    app.jinja_env.globals.update(version=__version__, safe_url=_safe_url, plural=_plural)
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

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response | str, int]:
        code = e.code or 500
        return _error(code, e.name, e.description or e.name)

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> tuple[Response | str, int]:
        log.exception("unexpected error on %s", request.path)
        return _error(500, "Internal error", "The dashboard failed to build this page.")

    @app.before_request
    def refuse_missing_sqlite_file() -> None:
        """A read-only service never creates the SQLite file a mistyped URL names."""
        if request.endpoint in ("healthz", "static", "favicon"):
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

    @app.get("/api/overview")
    def overview_api() -> Response:
        return jsonify(data.jsonable(data.overview(db, now(), config, interval)))

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

    @app.get("/api/models")
    def models_api() -> Response:
        rows, _ = _models()
        return jsonify(rows)

    def _detail(name: str) -> dict[str, Any]:
        detail = data.model_detail(db, name, now(), config, interval)
        if detail is None:
            raise NotFound(f"no model named {name!r} in the inventory")
        return detail

    @app.get("/models/<path:name>")
    def model_page(name: str) -> str:
        return render_template("model.html", m=_detail(name), nav="models")

    @app.get("/api/models/<path:name>")
    def model_api(name: str) -> Response:
        return jsonify(data.jsonable(_detail(name)))

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

    @app.get("/api/decisions")
    def decisions_api() -> Response:
        return jsonify(_decisions())

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

    @app.get("/api/findings")
    def findings_api() -> Response:
        return jsonify(_findings())

    app.register_blueprint(capacity_routes.blueprint(db, now, interval))
    return app
