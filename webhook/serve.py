"""``modelgate serve``: the admission webhook over TLS, served by Hypercorn (HTTP/1.1 and
HTTP/2) in worker processes (:func:`modelgate.serving.serve_workers`).

Every worker builds its own app (engine, recorder, metrics) after the fork, so no engine or
connection is shared across processes, and runs it behind :class:`webhook.asgi.WebhookASGI`:
connections are handled in the worker's event loop (idle keep-alive connections hold no
thread; up to ``--threads`` requests are decided at once), a connection that sends nothing for
``MODELGATE_READ_TIMEOUT_SECONDS`` is closed, and beyond ``--max-pending`` waiting requests the
answer is an immediate 429. TLS uses one :class:`webhook.tls.CertReloader` per worker: a rotated
certificate is served to new connections without a restart. With ``--client-ca`` the TLS port
accepts only clients whose certificate that CA signed (the API server's, see the chart README);
kubelet probes then use the plain-HTTP ``--probe-port``, which answers everything but reviews.

SIGTERM: stop accepting, answer the requests in flight, flush the recorder, exit. With more
than one worker the Prometheus client runs in multiprocess mode (a temporary
``PROMETHEUS_MULTIPROC_DIR`` unless one is set), so ``/metrics`` reports all workers together.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from modelgate.serving import bind_address, serve_workers, server_config
from modelgate.settings import LOG_FORMAT, Settings, SettingsError
from webhook.tls import CertReloader, TLSConfigError

log = logging.getLogger("modelgate.webhook")

#: seconds SIGTERM waits for requests in flight (the recorder flush comes after)
GRACEFUL_SECONDS = 20.0


def _asgi_factory(settings: Settings, threads: int, max_pending: int) -> Any:
    """What each worker builds after the fork: the Flask app behind the ASGI adapter."""

    def build() -> Any:
        from webhook.app import app_state, create_app
        from webhook.asgi import WebhookASGI

        app = create_app(settings)
        state = app_state(app)
        return WebhookASGI(
            app,
            threads=threads,
            max_body=settings.max_request_bytes,
            max_pending=max_pending,
            mutual_tls=settings.client_ca is not None,
            on_overload=lambda reason: state.metrics.overload.labels(reason).inc(),
            on_shutdown=state.close,
        )

    return build


def _worker_exit(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _preflight(settings: Settings) -> None:
    """Fail fast, with one clear line, on configuration every worker would choke on."""
    from modelgate.inventory.db import DatabaseURLError, normalize_url

    try:
        normalize_url(settings.database_url)
    except DatabaseURLError as e:
        raise click.ClickException(f"MODELGATE_DATABASE_URL: {e}") from e
    if not settings.policy_dir.is_dir():
        log.warning(
            "policy directory %s does not exist: /readyz stays 503 until it does",
            settings.policy_dir,
        )


@click.command("serve")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--tls-cert",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (chain); reloaded when the file changes.",
)
@click.option(
    "--tls-key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key; reloaded when the file changes.",
)
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="MODELGATE_CLIENT_CA",
    help="Mutual TLS: accept only clients with a certificate this PEM CA signed (the API "
    "server's client certificate); decisions record caller_verified. [env: MODELGATE_CLIENT_CA]",
)
@click.option(
    "--probe-port",
    type=click.IntRange(1, 65535),
    help="Also serve /healthz, /readyz and /metrics over plain HTTP on this port (for kubelet "
    "probes with --client-ca; reviews are refused there).",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes.",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests decided at once per worker (idle connections need no thread).",
)
@click.option(
    "--max-pending",
    default=256,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Requests per worker that may wait for a thread; beyond, 429 with Retry-After.",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve_command(
    host: str,
    port: int,
    tls_cert: Path,
    tls_key: Path,
    client_ca: Path | None,
    probe_port: int | None,
    workers: int,
    threads: int,
    max_pending: int,
    access_log: bool,
) -> None:
    """Run the admission webhook over TLS (settings from MODELGATE_* variables)."""
    try:
        settings = Settings.from_env(client_ca=client_ca)
    except SettingsError as e:
        raise click.ClickException(str(e)) from e
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=LOG_FORMAT,
    )
    try:  # fail here, once, on files every worker would refuse
        CertReloader(tls_cert, tls_key, client_ca=settings.client_ca)
    except TLSConfigError as e:
        raise click.ClickException(str(e)) from e
    if probe_port is not None and probe_port == port:
        raise click.ClickException("--probe-port must differ from --port")
    _preflight(settings)

    own_metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # must be set before prometheus_client is imported (the workers import it after fork)
        own_metrics_dir = tempfile.mkdtemp(prefix="modelgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    def ssl_context() -> Any:  # in each worker: its own reloader
        return CertReloader(tls_cert, tls_key, client_ca=settings.client_ca).server_context()

    config = server_config(
        binds=[bind_address(host, port)],
        insecure_binds=[bind_address(host, probe_port)] if probe_port is not None else [],
        ssl_context_factory=ssl_context,
        read_timeout=settings.read_timeout_seconds,
        keep_alive_timeout=max(settings.read_timeout_seconds, 5.0),
        graceful_timeout=GRACEFUL_SECONDS,
        access_log=access_log,
        log_level=settings.log_level,
    )
    try:
        code = serve_workers(
            _asgi_factory(settings, threads, max_pending),
            config,
            workers=workers,
            on_worker_exit=_worker_exit,
        )
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    sys.exit(code)
