"""Policy engines behind one Protocol (:class:`policies.engines.base.PolicyEngine`)."""

from __future__ import annotations

from pathlib import Path

from policies import BUNDLE_DIR
from policies.engines.base import (
    BundleError,
    EvaluationError,
    EvaluationTimeout,
    EvaluatorCrashed,
    PolicyEngine,
    PolicyError,
    PolicyResult,
    ReloadCallback,
    StaleBundle,
)

__all__ = [
    "ENGINE_NAMES",
    "BundleError",
    "EvaluationError",
    "EvaluationTimeout",
    "EvaluatorCrashed",
    "PolicyEngine",
    "PolicyError",
    "PolicyResult",
    "ReloadCallback",
    "StaleBundle",
    "create_engine",
]

#: the engines :func:`create_engine` builds
ENGINE_NAMES = ("embedded", "opa", "opa-inprocess")


def create_engine(
    kind: str = "embedded",
    policy_dir: Path = BUNDLE_DIR,
    *,
    opa_url: str = "http://127.0.0.1:8181",
    timeout: float = 2.0,
    evaluators: int = 2,
) -> PolicyEngine:
    """The engine ``kind`` names (``embedded``, ``opa`` or ``opa-inprocess``) with the bundle
    of ``policy_dir`` loaded (``ready()`` is False when that first load failed). ``timeout``
    is the default deadline of one evaluation; ``opa_url`` the OPA server (``opa`` only);
    ``evaluators`` the number of rego-cpp processes (``embedded`` only). Call
    ``start_watching(interval)`` on the result to follow edits of the directory."""
    if kind == "opa":
        from policies.engines.opa import OpaEngine

        return OpaEngine(Path(policy_dir), opa_url, timeout=timeout)
    if kind == "embedded":
        from policies.engines.embedded import EmbeddedEngine

        return EmbeddedEngine(Path(policy_dir), timeout=timeout, evaluators=evaluators)
    if kind == "opa-inprocess":
        from policies.engines.inprocess import InProcessOpaEngine

        return InProcessOpaEngine(Path(policy_dir), timeout=timeout)
    raise ValueError(f"unknown policy engine {kind!r} (one of {', '.join(ENGINE_NAMES)})")
