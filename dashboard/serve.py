"""``modelgate dashboard``: the governance dashboard and the inventory API (``/api/v1``)
under gunicorn, plain HTTP.

It binds to 127.0.0.1 by default. Every page and API call needs an authenticated caller
(static tokens, OIDC, Kubernetes tokens, browser sign-in or a trusted proxy; see
:mod:`dashboard.auth`); terminate TLS in front of it (an ingress), since bearer tokens and
the session cookie travel with every request.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from modelgate.serving import GunicornApp, bind_address, no_control_socket
from modelgate.settings import LOG_FORMAT, Settings, SettingsError

log = logging.getLogger("modelgate.dashboard")


def _create_app(settings: Settings) -> Any:
    from dashboard.app import create_app

    return create_app(settings)


def gunicorn_options(
    *, host: str, port: int, workers: int, log_level: str, access_log: bool
) -> dict[str, Any]:
    return {
        "bind": [bind_address(host, port)],
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
        **no_control_socket(),
    }


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def dashboard_command(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the governance dashboard and the authenticated inventory API (/api/v1, OpenAPI at
    /api/v1/openapi.json) over plain HTTP: inventory health, documentation gaps, findings,
    model health, resources and capacity, trends, audit readiness, and sign-off (approvals,
    exemptions, recorded certifications). Callers authenticate with MODELGATE_TOKEN_FILE
    tokens, OIDC (MODELGATE_OIDC_*), Kubernetes tokens (MODELGATE_KUBE_AUTH) or a trusted
    proxy; roles come from MODELGATE_ROLE_GROUPS or RBAC (MODELGATE_KUBE_AUTHZ). Terminate TLS
    in front of it. Settings come from MODELGATE_* variables (MODELGATE_DATABASE_URL,
    MODELGATE_SCAN_INTERVAL_SECONDS)."""
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
        format=LOG_FORMAT,
    )
    try:
        from modelgate.identity import access_for

        access_for(settings)  # a bad MODELGATE_ROLE_GROUPS etc. is a usage error, now
    except (SettingsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "the dashboard serves plain HTTP on %s: terminate TLS in front of it (tokens and "
            "session cookies travel with every request)",
            host,
        )
    options = gunicorn_options(
        host=host, port=port, workers=workers, log_level=settings.log_level, access_log=access_log
    )
    GunicornApp(_create_app, settings, options).run()
    sys.exit(0)
