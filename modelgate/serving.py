"""gunicorn embedded as a library: the one server class behind ``modelgate serve`` (the
webhook) and ``modelgate dashboard``.

Every worker calls the app factory after the fork, so no engine or database connection is
shared across processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

from modelgate.settings import Settings


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
