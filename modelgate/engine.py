"""The policy engine for a :class:`~modelgate.settings.Settings`: the one place that turns
settings into :func:`policies.engines.create_engine`'s explicit arguments."""

from __future__ import annotations

from modelgate.settings import Settings
from policies.engines import PolicyEngine, ReloadCallback, create_engine


def engine_for(
    settings: Settings, *, watch: bool = False, on_reload: ReloadCallback | None = None
) -> PolicyEngine:
    """The engine ``settings.policy_engine`` names, serving ``settings.policy_dir``. With
    ``watch=True`` it re-checks the directory every ``settings.policy_reload_seconds``
    (when that is positive) and calls ``on_reload`` after each check."""
    engine = create_engine(
        settings.policy_engine,
        settings.policy_dir,
        opa_url=settings.opa_url,
        timeout=settings.policy_timeout_seconds,
        evaluators=settings.evaluators,
    )
    if watch and settings.policy_reload_seconds > 0:
        engine.start_watching(settings.policy_reload_seconds, on_reload=on_reload)
    return engine
