"""``modelgate dashboard``: the read-only governance dashboard under gunicorn, plain HTTP.

It binds to 127.0.0.1 by default. It writes nothing, but it shows internal data (owners,
datasets, decisions, findings): expose it only behind an ingress or proxy that
authenticates users and terminates TLS.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

from modelgate.settings import Settings, SettingsError

log = logging.getLogger("modelgate.dashboard")


class DashboardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running :func:`dashboard.app.create_app` in each worker (after the fork, so
    no engine or connection is shared across processes)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from dashboard.app import create_app

        return create_app(self.settings)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def gunicorn_options(
    *, host: str, port: int, workers: int, log_level: str, access_log: bool
) -> dict[str, Any]:
    known = {getattr(s, "name", None) for s in KNOWN_SETTINGS}
    return {
        "bind": [_bind(host, port)],
        "workers": workers,
        "threads": 4,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 10,
        "loglevel": log_level.lower(),
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "proc_name": "modelgate-dashboard",
        "preload_app": False,
        # gunicorn >= 25.1 opens a control socket under $HOME by default; nothing uses it
        **({"control_socket_disable": True} if "control_socket_disable" in known else {}),
    }


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def dashboard_command(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the read-only governance dashboard over plain HTTP (inventory health,
    documentation gaps, audit readiness; JSON under /api/). It shows internal data: put it
    behind an ingress or proxy that authenticates users and terminates TLS. Settings come
    from MODELGATE_* variables (MODELGATE_DATABASE_URL)."""
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        raise click.ClickException(str(e)) from e
    from modelgate.inventory.db import DatabaseURLError, normalize_url

    try:
        normalize_url(settings.database_url)
    except DatabaseURLError as e:
        raise click.ClickException(f"MODELGATE_DATABASE_URL: {e}") from e
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "the dashboard has no authentication of its own: serve %s only behind an "
            "authenticating proxy",
            host,
        )
    options = gunicorn_options(
        host=host, port=port, workers=workers, log_level=settings.log_level, access_log=access_log
    )
    DashboardServer(settings, options).run()
    sys.exit(0)
