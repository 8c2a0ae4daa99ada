"""Every API response in the tests is validated against ``dashboard/openapi.json``
(openapi-core): status codes, headers and bodies must be the documented ones."""

from __future__ import annotations

import functools
from typing import Any

from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from dashboard.api import OPENAPI_FILE


@functools.cache
def spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(OPENAPI_FILE))


def checked(response: TestResponse, request: Request | None = None) -> TestResponse:
    """``response`` after validating it (and its request, when its body is still readable)
    against the document."""
    request = request if request is not None else response.request
    spec().validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
    return response


class ApiClient:
    """A Flask test client whose every ``/api/v1`` response is validated."""

    def __init__(self, client: FlaskClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def as_(self, token: str | None) -> ApiClient:
        return ApiClient(self.client, token)

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token is not None:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def _send(self, **kwargs: Any) -> TestResponse:
        # one builder for the app, one for the check (the app reads the body's stream)
        response = self.client.open(EnvironBuilder(**kwargs))
        return checked(response, EnvironBuilder(**kwargs).get_request())

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> TestResponse:
        return self._send(path=path, method="GET", headers=self._headers(headers))

    def post(
        self, path: str, json: Any = None, *, headers: dict[str, str] | None = None
    ) -> TestResponse:
        return self._send(path=path, method="POST", json=json, headers=self._headers(headers))
