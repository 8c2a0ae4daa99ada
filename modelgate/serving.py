"""The servers behind modelgate's commands, embedded as libraries:

* :func:`serve_workers`: Hypercorn (asyncio; HTTP/1.1 and HTTP/2 over TLS) in forked worker
  processes under a small supervisor, for ``modelgate serve`` (the webhook). Connections live
  in each worker's event loop, so idle keep-alive connections never hold a thread (gunicorn's
  gthread worker stalls once more connections than ``workers x threads`` are open, its issue
  #2917).
* :class:`GunicornApp`: gunicorn, for ``modelgate dashboard``.

Every worker calls the app factory after the fork, so no engine or database connection is
shared across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS
from hypercorn.config import Config as HypercornConfig

from modelgate.settings import Settings

log = logging.getLogger("modelgate.serving")

#: the read buffer of each TLS connection in the workers' event loops (asyncio's SSLProtocol
#: allocates 256 KiB per connection; one TLS record is at most 16 KiB). A connection the
#: client has closed is released only when Hypercorn's keep-alive timer for it fires, so
#: clients that open many short connections kept ~290 KB each alive for
#: MODELGATE_READ_TIMEOUT_SECONDS (500 of them: 146 MiB); with this, ~35 KB.
TLS_READ_BUFFER_BYTES = 16 * 1024


class GunicornApp(BaseApplication):  # type: ignore[misc]
    """gunicorn running ``factory(settings)`` in each worker with the given options."""

    def __init__(
        self, factory: Callable[[Settings], Any], settings: Settings, options: dict[str, Any]
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory(self.settings)


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``bind`` for ``host``/``port`` (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def no_control_socket() -> dict[str, Any]:
    """gunicorn >= 25.1 opens a runtime-control socket under ``$HOME/.gunicorn`` by default; the
    chart's pods have a read-only root filesystem (an error line at every start) and nothing
    manages the workers at runtime, so it stays off where the setting exists."""
    known = {getattr(s, "name", None) for s in KNOWN_SETTINGS}
    return {"control_socket_disable": True} if "control_socket_disable" in known else {}


class ServerConfig(HypercornConfig):  # type: ignore[misc]
    """Hypercorn's config with the TLS context supplied by a factory (a reloading one)."""

    ssl_context_factory: Callable[[], ssl.SSLContext] | None = None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if self.ssl_context_factory is None:
            return None
        return self.ssl_context_factory()

    @property
    def ssl_enabled(self) -> bool:
        return self.ssl_context_factory is not None


def server_config(
    *,
    binds: list[str],
    insecure_binds: list[str],
    ssl_context_factory: Callable[[], ssl.SSLContext],
    read_timeout: float,
    keep_alive_timeout: float,
    graceful_timeout: float,
    access_log: bool,
    log_level: str,
) -> ServerConfig:
    config = ServerConfig()
    config.bind = binds
    config.insecure_bind = insecure_binds
    config.ssl_context_factory = ssl_context_factory
    # a connection that sends nothing (partial headers or body, a huge Content-Length and
    # then silence, or an idle keep-alive connection) for this long is closed
    config.read_timeout = read_timeout  # type: ignore[assignment]  # a float works
    config.keep_alive_timeout = keep_alive_timeout
    config.graceful_timeout = graceful_timeout
    config.ssl_handshake_timeout = min(read_timeout, 10.0)
    config.backlog = 2048
    config.include_server_header = False
    config.accesslog = "-" if access_log else None
    config.errorlog = "-"
    config.loglevel = log_level.upper()
    return config


def serve_workers(
    app_factory: Callable[[], Any],
    config: ServerConfig,
    *,
    workers: int,
    on_worker_exit: Callable[[int], None] | None = None,
) -> int:
    """Bind, fork ``workers`` processes that each build ``app_factory()`` (an ASGI app) and
    serve it with Hypercorn, and supervise them: a worker that dies is replaced; SIGTERM or
    SIGINT stops accepting, lets every worker answer its requests in flight (up to
    ``config.graceful_timeout``) and run its ASGI lifespan shutdown, then returns 0."""
    sockets = config.create_sockets()
    children: dict[int, float] = {}
    stopping = False
    fast_failures = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _worker(app_factory, config, sockets)
            except BaseException:
                log.exception("webhook worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = time.monotonic()

    for _ in range(workers):
        spawn()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid == 0:
            time.sleep(0.1)
            continue
        started = children.pop(pid, None)
        if on_worker_exit is not None:
            on_worker_exit(pid)
        if stopping or started is None:
            continue
        log.error("webhook worker %d exited (%s); starting another", pid, _status(status))
        fast_failures = fast_failures + 1 if time.monotonic() - started < 5 else 0
        if fast_failures >= 5:
            log.error("webhook workers keep failing at start; stopping")
            stopping = True
            break
        spawn()
    for pid in list(children):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + config.graceful_timeout + 15
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
            continue
        children.pop(pid, None)
        if on_worker_exit is not None:
            on_worker_exit(pid)
    for pid in children:
        log.error("webhook worker %d did not stop in time; killing it", pid)
        _signal(pid, signal.SIGKILL)
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        sock.close()
    return 1 if fast_failures >= 5 else 0


def _worker(app_factory: Callable[[], Any], config: ServerConfig, sockets: Any) -> int:
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides, with SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _small_tls_buffers()
    app = app_factory()

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await worker_serve(
            wrap_app(app, config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=stop.wait,
        )

    asyncio.run(main())
    return 0


def _small_tls_buffers() -> None:
    """:data:`TLS_READ_BUFFER_BYTES` for every TLS connection of this (worker) process."""
    from asyncio import sslproto

    protocol = getattr(sslproto, "SSLProtocol", None)
    if protocol is not None and isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = TLS_READ_BUFFER_BYTES


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
