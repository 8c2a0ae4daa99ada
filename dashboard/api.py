"""The inventory API: JSON under ``/api/v1``, described by ``GET /api/v1/openapi.json``.

Every route needs an authenticated caller (``Authorization: Bearer TOKEN``; the session
cookie of the pages is never accepted here) with the permission it names; reads need the
``viewer`` role, registration ``owner``, sign-off ``approver``. The OpenAPI document itself is
served without authentication (it describes the API, it holds no data).

Errors are JSON ``{"error": "..."}``: 400 bad input, 401 no or bad credentials (with
``WWW-Authenticate: Bearer``), 403 too little role or a separation-of-duties refusal, 404, 409,
503 when the database or the identity provider does not answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import BadRequest, NotFound

from dashboard import data
from dashboard import signoff as views
from modelgate.identity import Identity, Permission
from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from modelgate.inventory.records import jsonable
from policies.config import PolicyConfig

HERE = Path(__file__).resolve().parent
OPENAPI_FILE = HERE / "openapi.json"
CONTEXT_KEY = "modelgate-api"

api = Blueprint("api", __name__, url_prefix="/api/v1")


class ApiContext:
    """What the routes need, set by the app factory."""

    def __init__(
        self,
        db: Database,
        config: PolicyConfig,
        now: Callable[[], datetime],
        require: Callable[[Identity, Permission, str], None],
        lists: Callable[[str], Any],
        interval: timedelta,
    ) -> None:
        self.db = db
        self.config = config
        self.now = now
        self.require = require
        self.lists = lists  # the page/JSON list builders shared with the pages
        self.interval = interval  # the scan interval: older runtime state is stale

    def today(self) -> date:
        return self.now().date()


def _ctx() -> ApiContext:
    ctx = current_app.extensions[CONTEXT_KEY]
    assert isinstance(ctx, ApiContext)
    return ctx


def _identity() -> Identity:
    identity = g.get("identity")
    assert isinstance(identity, Identity)
    return identity


def _need(permission: Permission, name: str = "") -> tuple[ApiContext, Identity]:
    ctx = _ctx()
    identity = _identity()
    ctx.require(identity, permission, name)
    return ctx, identity


def _body(*allowed: str) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"the request body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(allowed)}")
    return body


def _created(record: Any) -> tuple[Response, int]:
    return jsonify(jsonable(record)), 201


def _record_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as e:
        raise NotFound(f"no record {raw!r}") from e
    if value < 1:
        raise NotFound(f"no record {raw!r}")
    return value


# --- the document and the caller ---------------------------------------------------------


@api.get("/openapi.json")
def openapi() -> Response:
    return Response(OPENAPI_FILE.read_bytes(), mimetype="application/json")


@api.get("/whoami")
def whoami() -> Response:
    ctx = _ctx()
    identity = _identity()
    access = current_app.extensions["modelgate-access"]
    role = access.role_of(identity)
    return jsonify(
        user=identity.user,
        email=identity.email,
        groups=list(identity.groups),
        source=identity.source,
        role=role.name if role is not None else None,
        permissions=[p.name for p in Permission if access.allowed(identity, p)],
        today=ctx.today().isoformat(),
    )


# --- reads (viewer) -------------------------------------------------------------------------


@api.get("/overview")
def overview() -> Response:
    ctx, _ = _need(Permission.read)
    return jsonify(data.jsonable(data.overview(ctx.db, ctx.now(), ctx.config, ctx.interval)))


@api.get("/models")
def models() -> Response:
    ctx, _ = _need(Permission.list)
    return jsonify(ctx.lists("models"))


@api.get("/models/<name>")
def model(name: str) -> Response:
    ctx, _ = _need(Permission.read, name)
    detail = data.model_detail(ctx.db, name, ctx.now(), ctx.config, ctx.interval)
    if detail is None:
        raise NotFound(f"no model named {name!r} in the inventory")
    states = views.sign_off_states(ctx.db, name, ctx.today(), ctx.config)
    for v in detail["versions"]:
        v["sign_off"] = states.get(v["version"])
    return jsonify(detail)


@api.get("/decisions")
def decisions() -> Response:
    ctx, _ = _need(Permission.list)
    return jsonify(ctx.lists("decisions"))


@api.get("/findings")
def findings() -> Response:
    ctx, _ = _need(Permission.list)
    return jsonify(ctx.lists("findings"))


@api.get("/reviews")
def reviews() -> Response:
    ctx, _ = _need(Permission.read_approvals)
    return jsonify(views.waiting_for_review(ctx.db, ctx.today(), ctx.config))


@api.get("/models/<name>/versions/<version>")
def version(name: str, version: str) -> Response:
    ctx, _ = _need(Permission.read, name)
    return jsonify(views.version_detail(ctx.db, name, version, ctx.today(), ctx.config))


@api.get("/models/<name>/versions/<version>/approvals")
def version_approvals(name: str, version: str) -> Response:
    ctx, _ = _need(Permission.read_approvals, name)
    rows = signoff.approvals(ctx.db, today=ctx.today(), model=name, version=version)
    return jsonify(jsonable(rows))


@api.get("/approvals")
def all_approvals() -> Response:
    ctx, _ = _need(Permission.read_approvals)
    model_name = request.args.get("model", "").strip() or None
    rows = signoff.approvals(ctx.db, today=ctx.today(), model=model_name)
    return jsonify(jsonable(rows))


@api.get("/approval-log")
def approval_log() -> Response:
    ctx, _ = _need(Permission.read_approvals)
    model_name = request.args.get("model", "").strip() or None
    return jsonify(jsonable(signoff.approval_log(ctx.db, model=model_name)))


# --- writes -------------------------------------------------------------------------------


@api.post("/models/<name>/versions")
def register(name: str) -> tuple[Response, int]:
    ctx, identity = _need(Permission.register, name)
    body = _body("version", "metadata")
    metadata = body.get("metadata")
    if not isinstance(body.get("version"), str) or not isinstance(metadata, dict):
        raise BadRequest('send {"version": "...", "metadata": {"owner": "...", ...}}')
    record = signoff.register_version(
        ctx.db,
        model=name,
        version=cast(str, body["version"]),
        metadata=metadata,
        actor=identity,
        config=ctx.config,
        now=ctx.now(),
    )
    return _created(record)


@api.post("/models/<name>/versions/<version>/approvals")
def approve(name: str, version: str) -> tuple[Response, int]:
    ctx, identity = _need(Permission.approve, name)
    body = _body("decision", "reason", "evidence", "expires", "scope")
    record = signoff.record_approval(
        ctx.db,
        model=name,
        version=version,
        decision=str(body.get("decision") or ""),
        actor=identity,
        reason=body.get("reason"),
        evidence=body.get("evidence"),
        expires=body.get("expires"),
        scope=body.get("scope"),
        config=ctx.config,
        today=ctx.today(),
        now=ctx.now(),
    )
    return _created(record)


@api.post("/approvals/<approval_id>/revoke")
def revoke(approval_id: str) -> Response:
    ctx, identity = _need(Permission.approve)
    body = _body("reason")
    record = signoff.revoke_approval(
        ctx.db,
        _record_id(approval_id),
        actor=identity,
        reason=body.get("reason"),
        today=ctx.today(),
        now=ctx.now(),
    )
    return jsonify(jsonable(record))


@api.get("/models/<name>/versions/<version>/exemptions")
def exemptions(name: str, version: str) -> Response:
    ctx, _ = _need(Permission.read_approvals, name)
    detail = signoff.version_sign_off(ctx.db, name, version, today=ctx.today(), config=ctx.config)
    return jsonify(jsonable(detail.exemptions))


@api.post("/models/<name>/versions/<version>/exemptions")
def exempt(name: str, version: str) -> tuple[Response, int]:
    ctx, identity = _need(Permission.exempt, name)
    body = _body("reason", "expires")
    record = signoff.record_exemption(
        ctx.db,
        model=name,
        version=version,
        actor=identity,
        reason=body.get("reason"),
        expires=body.get("expires"),
        today=ctx.today(),
        now=ctx.now(),
    )
    return _created(record)


@api.post("/exemptions/<exemption_id>/revoke")
def revoke_exemption(exemption_id: str) -> Response:
    ctx, identity = _need(Permission.exempt)
    body = _body("reason")
    record = signoff.revoke_exemption(
        ctx.db, _record_id(exemption_id), actor=identity, reason=body.get("reason"), now=ctx.now()
    )
    return jsonify(jsonable(record))


@api.get("/models/<name>/versions/<version>/certifications")
def certifications(name: str, version: str) -> Response:
    ctx, _ = _need(Permission.read_approvals, name)
    detail = signoff.version_sign_off(ctx.db, name, version, today=ctx.today(), config=ctx.config)
    return jsonify(jsonable(detail.certifications))


@api.post("/models/<name>/versions/<version>/certifications")
def certify(name: str, version: str) -> tuple[Response, int]:
    ctx, identity = _need(Permission.certify, name)
    body = _body("name", "expires", "evidence")
    record = signoff.record_certification(
        ctx.db,
        model=name,
        version=version,
        actor=identity,
        name=body.get("name"),
        expires=body.get("expires"),
        evidence=body.get("evidence"),
        today=ctx.today(),
        now=ctx.now(),
    )
    return _created(record)


@api.post("/certifications/<certification_id>/revoke")
def revoke_certification(certification_id: str) -> Response:
    ctx, identity = _need(Permission.certify)
    body = _body("reason")
    record = signoff.revoke_certification(
        ctx.db,
        _record_id(certification_id),
        actor=identity,
        reason=body.get("reason"),
        now=ctx.now(),
    )
    return jsonify(jsonable(record))
