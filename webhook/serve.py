"""``modelgate serve``: the admission webhook under gunicorn (gthread workers) over TLS.

gunicorn is embedded as a ``BaseApplication``. Every worker builds its own app (engine,
recorder, metrics) after the fork, so no engine or connection is shared across processes. TLS
uses one :class:`webhook.tls.CertReloader` per worker through gunicorn's ``ssl_context``
hook, which the gthread worker calls for each new connection: a rotated certificate is served
without restarting.

With more than one worker the Prometheus client runs in multiprocess mode (a temporary
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

from modelgate.serving import GunicornApp, bind_address, no_control_socket
from modelgate.settings import Settings, SettingsError
from webhook.tls import CertReloader, TLSConfigError

log = logging.getLogger("modelgate.webhook")


def _create_app(settings: Settings) -> Any:
    from webhook.app import create_app

    return create_app(settings)


def _worker_exit(server: Any, worker: Any) -> None:
    """Close the worker's app: stop the reloader, flush the recorder, close the engine."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("modelgate") if app is not None else None
    if state is not None:
        state.close()


def _child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def gunicorn_options(
    *,
    host: str,
    port: int,
    tls_cert: Path,
    tls_key: Path,
    workers: int,
    threads: int,
    reloader: CertReloader,
    log_level: str,
    access_log: bool,
) -> dict[str, Any]:
    return {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "certfile": str(tls_cert),
        "keyfile": str(tls_key),
        "ssl_context": reloader.gunicorn_hook,
        "timeout": 30,
        "graceful_timeout": 30,  # > the recorder flush in worker_exit
        "keepalive": 30,
        "loglevel": log_level.lower(),
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "proc_name": "modelgate-webhook",
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
        "preload_app": False,
        **no_control_socket(),
    }


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
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes.",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads per worker (gthread).",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve_command(
    host: str,
    port: int,
    tls_cert: Path,
    tls_key: Path,
    workers: int,
    threads: int,
    access_log: bool,
) -> None:
    """Run the admission webhook over TLS (settings from MODELGATE_* variables)."""
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        raise click.ClickException(str(e)) from e
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        reloader = CertReloader(tls_cert, tls_key)
    except TLSConfigError as e:
        raise click.ClickException(str(e)) from e
    _preflight(settings)

    own_metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # must be set before prometheus_client is imported (the workers import it after fork)
        own_metrics_dir = tempfile.mkdtemp(prefix="modelgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    options = gunicorn_options(
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        workers=workers,
        threads=threads,
        reloader=reloader,
        log_level=settings.log_level,
        access_log=access_log,
    )
    try:
        GunicornApp(_create_app, settings, options).run()
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    sys.exit(0)
