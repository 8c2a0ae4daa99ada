"""The policy engine seam: one ``Protocol``, three implementations (embedded, opa,
opa-inprocess)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from policies.config import PolicyConfig

#: called by the watcher after every check: (a new bundle now serves, the error or None)
ReloadCallback = Callable[[bool, "BaseException | None"], None]


class PolicyError(Exception):
    """Base class for policy evaluation problems."""


class BundleError(PolicyError):
    """The policy bundle cannot be loaded or does not compile."""


class EvaluationError(PolicyError):
    """Evaluation failed (engine error, bad result shape, OPA unreachable)."""


class EvaluationTimeout(EvaluationError):
    """Evaluation did not finish within the configured timeout (or its deadline)."""


class EvaluatorCrashed(EvaluationError):
    """The process evaluating the policy died (the embedded engine restarts it)."""


class StaleBundle(EvaluationError):
    """The engine answered, but not from the complete bundle this process loaded (OPA restarted
    empty, a push in progress, data missing): the answer is not trusted."""


@dataclass(frozen=True)
class PolicyResult:
    """What ``data.modelgate.admission`` answered for one input."""

    is_model: bool
    deny: tuple[str, ...] = ()
    warn: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    enforcement: str = "enforce"
    bundle_digest: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return not self.deny


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates the bundle. Implementations must be safe to call from several threads."""

    name: str

    @property
    def bundle_digest(self) -> str:
        """SHA-256 of the bundle currently serving (empty when none is loaded)."""
        ...

    @property
    def config(self) -> PolicyConfig:
        """The policy data (``data.modelgate.config``) of the bundle currently serving."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last (re)load failed; ``None`` after a successful one."""
        ...

    def ready(self) -> bool:
        """True once a bundle is loaded (and, for OPA, the server answers)."""
        ...

    def evaluate(
        self, policy_input: Mapping[str, Any], *, deadline: float | None = None
    ) -> PolicyResult:
        """Evaluate; raises :class:`EvaluationError` (or a subclass) on failure.

        ``deadline`` (a :func:`time.monotonic` instant; default: now plus the engine's
        timeout) is enforced: past it the evaluation is stopped and
        :class:`EvaluationTimeout` raised."""
        ...

    def reload_if_changed(self) -> bool:
        """Reload when the bundle on disk changed. True if a new bundle now serves.

        Raises :class:`BundleError` when the new bundle does not compile; the last good
        bundle keeps serving.
        """
        ...

    def start_watching(
        self, interval: float = 2.0, on_reload: ReloadCallback | None = None
    ) -> None:
        """Check the policy directory every ``interval`` seconds in a daemon thread, calling
        ``on_reload`` after each check."""
        ...

    def close(self) -> None:
        """Stop watching and release the engine's resources."""
        ...
