"""The webhook's Flask (WSGI) app behind an ASGI server (Hypercorn, see :mod:`webhook.serve`).

Connections live in the server's event loop, so an idle keep-alive connection costs a socket
and never a thread; only a request that has fully arrived takes one of ``threads`` threads.
This adapter:

* reads the body in the event loop, bounded by ``max_body`` (an oversized body is read and
  dropped up to :data:`DRAIN_LIMIT_BYTES`, then answered 413, so the client sees the answer
  instead of a reset);
* answers at once with 429 and ``Retry-After`` when ``max_pending`` requests already wait for
  or hold a thread (the API server treats it as a failed call, per its ``failurePolicy``),
  counting it as overload;
* passes the arrival time of the request (:data:`webhook.app.ENVIRON_ARRIVAL`: deadlines and
  the queue budget count from there), whether the caller was verified by mutual TLS, and
  whether the request came through the plain-HTTP probe listener;
* runs the app's shutdown (flush the recorder, close the engine) on ASGI lifespan shutdown,
  after the server has answered the requests in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from webhook.app import ENVIRON_ARRIVAL, ENVIRON_CALLER_VERIFIED, ENVIRON_PROBE_LISTENER

log = logging.getLogger("modelgate.webhook")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: an oversized body is read and dropped up to this many bytes before the 413 is sent
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class WebhookASGI:
    """``wsgi_app`` as an ASGI application (see the module doc)."""

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        threads: int,
        max_body: int,
        max_pending: int,
        mutual_tls: bool = False,
        on_overload: Callable[[str], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.threads = threads
        self.max_body = max_body
        self.max_pending = max_pending
        self.mutual_tls = mutual_tls
        self.on_overload = on_overload
        self.on_shutdown = on_shutdown
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelgate-http")
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    try:
                        await asyncio.get_running_loop().run_in_executor(None, self.on_shutdown)
                    except Exception:
                        log.exception("closing the webhook failed")
                self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrival = time.monotonic()
        if self.pending >= self.max_pending:
            if self.on_overload is not None:
                self.on_overload("backlog")
            await _respond(
                send,
                429,
                {"error": f"modelgate is overloaded ({self.pending} requests waiting); retry"},
                [(b"retry-after", b"1")],
            )
            return
        body, too_large = await self._read_body(scope, receive)
        if too_large:
            await _respond(
                send,
                413,
                {"error": f"request body exceeds the limit of {self.max_body} bytes"},
                [(b"connection", b"close")],
            )
            return
        environ = _environ(scope, body)
        environ[ENVIRON_ARRIVAL] = arrival
        plain = scope.get("scheme") == "http"
        environ[ENVIRON_PROBE_LISTENER] = self.mutual_tls and plain
        # with mutual TLS the TLS listener completes no handshake without a verified client
        # certificate; without it nobody is verified
        environ[ENVIRON_CALLER_VERIFIED] = True if self.mutual_tls and not plain else None
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            status, headers, chunks = await loop.run_in_executor(self._pool, self._run, environ)
        finally:
            self.pending -= 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = _content_length(scope)
        limit = self.max_body
        too_large = declared is not None and declared > limit
        body = bytearray()
        dropped = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if too_large or len(body) + len(chunk) > limit:
                too_large = True
                dropped += len(chunk)
                body.clear()
                if dropped > DRAIN_LIMIT_BYTES:
                    break
            else:
                body.extend(chunk)
            if not message.get("more_body"):
                break
        return bytes(body), too_large

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        result = self.wsgi_app(environ, start_response)
        try:
            chunks = [bytes(c) for c in result]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return int(status.split(" ", 1)[0]), encoded, chunks


async def _respond(
    send: Send, status: int, doc: dict[str, Any], extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(doc).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope with its whole body."""
    import io

    server = scope.get("server") or ("localhost", 0)
    client = scope.get("client") or ("", 0)
    path = scope.get("path", "/")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "https"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # the whole body is here (also when it came chunked): werkzeug may read it to the end
        "wsgi.input_terminated": True,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body was read whole: CONTENT_LENGTH says its size
        key = f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
