"""AdmissionReview ``admission.k8s.io/v1``: the wire format in and out, and its parser.

:func:`parse_review` turns raw request bytes into an :class:`AdmissionRequest` or raises a
:class:`ReviewError` whose ``status`` is the HTTP code to answer with (400, 413 or 415). It
never raises anything else, so a malformed body can never become a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from modelgate.workload import json_type_name

API_VERSION = "admission.k8s.io/v1"
KIND: Literal["AdmissionReview"] = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
#: Operations whose request carries no ``object`` to judge.
OBJECTLESS_OPERATIONS = ("DELETE", "CONNECT")


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class AdmissionRequest(TypedDict):
    uid: str
    kind: NotRequired[GroupVersionKind]
    resource: NotRequired[GroupVersionResource]
    subResource: NotRequired[str]
    requestKind: NotRequired[GroupVersionKind]
    requestResource: NotRequired[GroupVersionResource]
    requestSubResource: NotRequired[str]
    name: NotRequired[str]
    namespace: NotRequired[str]
    operation: str
    userInfo: NotRequired[UserInfo]
    object: NotRequired[dict[str, Any] | None]
    oldObject: NotRequired[dict[str, Any] | None]
    dryRun: NotRequired[bool]
    options: NotRequired[dict[str, Any] | None]


class Status(TypedDict):
    """``metav1.Status`` as used in a denial."""

    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    request: NotRequired[AdmissionRequest]
    response: NotRequired[AdmissionResponse]


class ReviewError(Exception):
    """The request body is not a usable AdmissionReview. ``status`` is the HTTP answer."""

    status = 400


class MalformedReview(ReviewError):
    """Not JSON, not an AdmissionReview, or a required field is missing (400)."""

    status = 400


class PayloadTooLarge(ReviewError):
    """The body exceeds ``settings.max_request_bytes`` (413)."""

    status = 413


class UnsupportedMediaType(ReviewError):
    """The Content-Type is not JSON (415)."""

    status = 415


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_review(
    body: bytes, content_type: str | None, *, max_bytes: int | None = None
) -> AdmissionRequest:
    """Validate an AdmissionReview body and return its ``request``.

    ``max_bytes`` (usually ``settings.max_request_bytes``) bounds the body size.
    """
    if _media_type(content_type) != "application/json":
        shown = content_type or "none"
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {shown}")
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedReview(f"request body is not UTF-8: {e.reason} at byte {e.start}") from e
    try:
        document = json.loads(text)
    except RecursionError as e:
        raise MalformedReview("request body is nested too deeply") from e
    except ValueError as e:
        raise MalformedReview(f"request body is not JSON: {e}") from e
    if _SURROGATE_ESCAPE.search(text):
        # json.loads accepts "\ud800" alone, but it is not Unicode: nothing downstream (the
        # policy engine, the database) can encode it
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise MalformedReview(
                "request body holds an invalid Unicode escape (an unpaired surrogate)"
            ) from e
    return validate_review(document)


def validate_review(document: Any) -> AdmissionRequest:
    """Check an already-decoded AdmissionReview and return its ``request``."""
    if not isinstance(document, dict):
        raise MalformedReview(
            f"request body must be a JSON object (AdmissionReview), not {json_type_name(document)}"
        )
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if kind != KIND:
        raise MalformedReview(f"kind must be {KIND!r}, not {kind!r}")
    if api_version != API_VERSION:
        raise MalformedReview(f"apiVersion must be {API_VERSION!r}, not {api_version!r}")
    request = document.get("request")
    if request is None:
        raise MalformedReview("AdmissionReview has no request")
    if not isinstance(request, dict):
        raise MalformedReview(f"request must be an object, not {json_type_name(request)}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing or not a non-empty string")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise MalformedReview(
            f"request.operation must be one of {', '.join(OPERATIONS)}, not {operation!r}"
        )
    obj = request.get("object")
    if operation not in OBJECTLESS_OPERATIONS:
        if obj is None:
            raise MalformedReview(f"request.object is required for {operation}")
        if not isinstance(obj, dict):
            raise MalformedReview(f"request.object must be an object, not {json_type_name(obj)}")
        if not isinstance(obj.get("kind"), str) and not _request_kind(request):
            raise MalformedReview("request.object has no kind")
    elif obj is not None and not isinstance(obj, dict):
        raise MalformedReview(f"request.object must be an object, not {json_type_name(obj)}")
    for key in ("oldObject", "options"):
        value = request.get(key)
        if value is not None and not isinstance(value, dict):
            raise MalformedReview(f"request.{key} must be an object, not {json_type_name(value)}")
    for key in ("kind", "userInfo"):
        value = request.get(key)
        if value is not None and not isinstance(value, dict):
            raise MalformedReview(f"request.{key} must be an object, not {json_type_name(value)}")
    for key in ("namespace", "name"):
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise MalformedReview(f"request.{key} must be a string, not {json_type_name(value)}")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise MalformedReview(f"request.dryRun must be a boolean, not {json_type_name(dry_run)}")
    result: AdmissionRequest = request  # type: ignore[assignment]
    return result


def _request_kind(request: Mapping[str, Any]) -> str:
    kind = request.get("kind")
    if isinstance(kind, Mapping) and isinstance(kind.get("kind"), str):
        return str(kind["kind"])
    return ""


def request_kind(request: AdmissionRequest) -> str:
    """The kind being admitted: ``request.kind.kind``, else the object's own ``kind``."""
    kind = _request_kind(request)
    if kind:
        return kind
    for key in ("object", "oldObject"):
        obj = request.get(key)
        if isinstance(obj, Mapping) and isinstance(obj.get("kind"), str):
            return str(obj["kind"])
    return ""


def review_response(
    uid: str,
    allowed: bool,
    *,
    message: str | None = None,
    warnings: list[str] | None = None,
    code: int = 403,
    reason: str = "Forbidden",
) -> AdmissionReview:
    """A well-formed AdmissionReview response."""
    response = AdmissionResponse(uid=uid, allowed=allowed)
    if not allowed:
        response["status"] = Status(code=code, reason=reason, message=message or "denied")
    if warnings:
        response["warnings"] = warnings
    return AdmissionReview(apiVersion=API_VERSION, kind=KIND, response=response)
