"""parse_review and review_response on their own (the app tests cover them over HTTP)."""

from __future__ import annotations

import json

import pytest

from webhook.review import (
    MalformedReview,
    PayloadTooLarge,
    UnsupportedMediaType,
    parse_review,
    request_kind,
    review_response,
)

from .reviews import deployment, review


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def test_valid_review_returns_its_request() -> None:
    req = parse_review(encode(review(deployment(), uid="u1")), "application/json")
    assert req["uid"] == "u1"
    assert request_kind(req) == "Deployment"


def test_escaped_surrogate_pairs_are_unicode_but_a_lone_surrogate_is_refused() -> None:
    d = deployment(annotations={"modelgate.dev/owner": "Zoë 😀"})
    body = encode(review(d))  # ensure_ascii: "\\u00eb" and the pair "\\ud83d\\ude00"
    assert b"\\ud83d\\ude00" in body
    req = parse_review(body, "application/json")
    assert req["object"]["metadata"]["annotations"]["modelgate.dev/owner"] == "Zoë 😀"
    d = deployment(annotations={"modelgate.dev/owner": "Zo\udce9"})
    with pytest.raises(MalformedReview, match="unpaired surrogate"):
        parse_review(encode(review(d)), "application/json")


def test_error_classes_carry_their_http_status() -> None:
    with pytest.raises(PayloadTooLarge) as too_big:
        parse_review(encode(review(deployment())), "application/json", max_bytes=100)
    assert too_big.value.status == 413
    assert "limit is 100 bytes" in str(too_big.value)
    with pytest.raises(UnsupportedMediaType) as media:
        parse_review(b"{}", "text/html")
    assert media.value.status == 415
    with pytest.raises(MalformedReview) as bad:
        parse_review(b"null", "application/json")
    assert bad.value.status == 400
    assert "not null" in str(bad.value)


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_need_no_object(operation: str) -> None:
    body = review(None, operation=operation, old=deployment())
    req = parse_review(encode(body), "application/json")
    assert req["operation"] == operation
    assert request_kind(req) == "Deployment"


def test_kind_falls_back_to_the_object() -> None:
    body = review(deployment())
    del body["request"]["kind"]
    req = parse_review(encode(body), "application/json")
    assert request_kind(req) == "Deployment"


def test_responses_are_well_formed() -> None:
    allowed = review_response("u", True, warnings=["w"])
    assert allowed == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": True, "warnings": ["w"]},
    }
    denied = review_response("u", False, message="no")
    assert denied["response"]["status"] == {"code": 403, "reason": "Forbidden", "message": "no"}
    assert "warnings" not in denied["response"]
