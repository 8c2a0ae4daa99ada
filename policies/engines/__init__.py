"""Policy engines behind one Protocol (:class:`policies.engines.base.PolicyEngine`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    PolicyEngine,
    PolicyError,
    PolicyResult,
)

if TYPE_CHECKING:
    from modelgate.settings import Settings

__all__ = [
    "BundleError",
    "EvaluationError",
    "EvaluationTimeout",
    "PolicyEngine",
    "PolicyError",
    "PolicyResult",
    "create_engine",
]


def create_engine(settings: Settings, *, watch: bool = False) -> PolicyEngine:
    """The engine ``settings.policy_engine`` names, with the bundle of ``settings.policy_dir``
    loaded (``ready()`` is False when that first load failed). With ``watch=True`` a daemon
    thread re-checks the directory every ``settings.policy_reload_seconds``."""
    engine: PolicyEngine
    if settings.policy_engine == "opa":
        from policies.engines.opa import OpaEngine

        opa = OpaEngine(
            settings.policy_dir, settings.opa_url, timeout=settings.policy_timeout_seconds
        )
        if watch:
            opa.start_watching(settings.policy_reload_seconds)
        engine = opa
    else:
        from policies.engines.embedded import EmbeddedEngine

        embedded = EmbeddedEngine(settings.policy_dir)
        if watch:
            embedded.start_watching(settings.policy_reload_seconds)
        engine = embedded
    return engine
