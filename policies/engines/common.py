"""What both engines share: bundle (re)loading, the file watcher and result decoding."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policies.bundle import Bundle, Fingerprint, fingerprint, load_bundle
from policies.config import PolicyConfig
from policies.engines.base import (
    BundleError,
    EvaluationError,
    PolicyResult,
    ReloadCallback,
    StaleBundle,
)
from policies.limits import apply_limits

log = logging.getLogger(__name__)


class BundleUnavailable(BundleError):
    """The bundle could not be activated for a passing reason (OPA unreachable): retried on
    the next check even if the files did not change."""


#: the package every engine evaluates
ENTRYPOINT = "modelgate/admission"
ENFORCEMENT_MODES = ("enforce", "warn", "off")


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvaluationError(f"policy result field {key!r} must be a set of strings")
    return tuple(sorted(set(value)))


def decode_result(doc: Any, digest: str) -> PolicyResult:
    """Turn the value of ``data.modelgate.admission`` into a :class:`PolicyResult`; raises
    :class:`StaleBundle` unless the answer carries ``digest`` (the bundle this process loaded
    and pushed) as its ``bundle_digest``."""
    if not isinstance(doc, Mapping):
        raise StaleBundle(
            "data.modelgate.admission is undefined or not an object (the engine serves no "
            "modelgate bundle)"
        )
    answered = doc.get("bundle_digest")
    if answered != digest:
        if answered is None:
            raise StaleBundle(
                "the engine's answer carries no bundle digest (the policy data is missing or "
                "only partly loaded)"
            )
        raise StaleBundle(
            f"the engine answered from bundle {str(answered)[:12] or '(none)'}, not from the "
            f"loaded bundle {digest[:12]} (restarted, or an update is in progress)"
        )
    is_model = doc.get("is_model", False)
    if not isinstance(is_model, bool):
        raise EvaluationError("policy result field 'is_model' must be a boolean")
    enforcement = doc.get("enforcement", "enforce")
    if enforcement not in ENFORCEMENT_MODES:
        raise EvaluationError(f"policy result field 'enforcement' has bad value {enforcement!r}")
    return PolicyResult(
        is_model=is_model,
        deny=_strings(doc, "deny"),
        warn=_strings(doc, "warn"),
        violations=_strings(doc, "violations"),
        enforcement=str(enforcement),
        bundle_digest=digest,
    )


#: a trivial input (a ConfigMap) every bundle must answer before it serves
SMOKE_INPUT: dict[str, Any] = {
    "mode": "evaluate",
    "now": "2000-01-01T00:00:00Z",
    "today": "2000-01-01",
    "request": {},
    "workload": {
        "api_version": "v1",
        "kind": "ConfigMap",
        "name": "smoke",
        "namespace": "default",
        "labels": {},
        "annotations": {},
        "templates": [],
        "containers": [],
        "images": [],
        "storage_uris": [],
        "metadata": {},
        "metadata_sources": {},
        "model_label": False,
        "controlled": False,
        "owner_references": [],
    },
    "namespace": {"name": "default", "labels": {}},
    "enforcement": None,
}


def smoke_test(bundle: Bundle, answer: Callable[[Mapping[str, Any]], Any]) -> None:
    """Refuse (BundleError) a compiled ``bundle`` that cannot answer :data:`SMOKE_INPUT`
    through ``answer`` (the engine's evaluation of ``data.modelgate.admission``), or answers
    without its digest."""
    try:
        decode_result(answer(SMOKE_INPUT), bundle.digest)
    except StaleBundle as e:
        raise BundleError(
            f"policy bundle in {bundle.root} does not answer its digest ({e}): the entry "
            "package must define `bundle_digest := data.modelgate.bundle.digest`"
        ) from e
    except EvaluationError as e:
        raise BundleError(f"policy bundle in {bundle.root} gives no usable answer: {e}") from e


class ReloadingEngine:
    """Keeps the newest bundle that compiled; subclasses implement :meth:`_activate`.

    ``reload_if_changed`` first compares a stat fingerprint (cheap), then the content digest;
    only a changed digest is compiled. A bundle that does not compile raises
    :class:`BundleError` and the previous one keeps serving.
    """

    name = "base"

    def __init__(self, policy_dir: Path) -> None:
        self.policy_dir = Path(policy_dir)
        self._reload_lock = threading.Lock()
        self._bundle: Bundle | None = None
        self._config = PolicyConfig()
        self._fingerprint: Fingerprint | None = None
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    #: default time one evaluation may take (``evaluate`` without a deadline)
    timeout: float = 2.0

    # -- subclass hooks ------------------------------------------------------------------

    def _activate(self, bundle: Bundle) -> None:
        """Compile/push ``bundle`` and make it the one serving; raise BundleError if bad."""
        raise NotImplementedError

    def _answer(self, policy_input: Mapping[str, Any], deadline: float) -> tuple[Any, str]:
        """The value of ``data.modelgate.admission`` for ``policy_input`` (already within the
        size limits) and the digest of the bundle it must come from; raises
        :class:`EvaluationError` (:class:`EvaluationTimeout` past ``deadline``)."""
        raise NotImplementedError

    # -- evaluating ----------------------------------------------------------------------

    def evaluate(
        self, policy_input: Mapping[str, Any], *, deadline: float | None = None
    ) -> PolicyResult:
        """Size limits first (:mod:`policies.limits`), then the engine, then the answer is
        checked against the loaded bundle's digest."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        limited = apply_limits(policy_input, self._config.limits)
        doc, digest = self._answer(limited, deadline)
        return decode_result(doc, digest)

    # -- public --------------------------------------------------------------------------

    @property
    def bundle(self) -> Bundle | None:
        return self._bundle

    @property
    def bundle_digest(self) -> str:
        bundle = self._bundle
        return bundle.digest if bundle is not None else ""

    @property
    def config(self) -> PolicyConfig:
        return self._config

    @property
    def last_error(self) -> str | None:
        """The message of the last failed (re)load, None after a successful one."""
        return self._last_error

    def reload_if_changed(self) -> bool:
        with self._reload_lock:
            current = fingerprint(self.policy_dir)
            if current == self._fingerprint:
                return False
            try:
                bundle = load_bundle(self.policy_dir)
                if self._bundle is not None and bundle.digest == self._bundle.digest:
                    self._fingerprint = bundle.fingerprint
                    self._last_error = None
                    return False
                self._activate(bundle)
            except BundleError as e:
                # remember the files we looked at, so a broken bundle is reported once
                if not isinstance(e, BundleUnavailable):
                    self._fingerprint = current
                self._last_error = str(e)
                raise
            self._bundle = bundle
            self._config = PolicyConfig.from_bundle(bundle)
            self._fingerprint = bundle.fingerprint
            self._last_error = None
            log.info(
                "policy bundle %s loaded from %s (%s engine)",
                bundle.digest[:12],
                self.policy_dir,
                self.name,
            )
            return True

    def load_initial(self) -> None:
        """First load; a failure is logged and leaves the engine not ready."""
        try:
            self.reload_if_changed()
        except BundleError as e:
            log.error("policy bundle in %s cannot be loaded: %s", self.policy_dir, e)

    def start_watching(
        self, interval: float = 2.0, on_reload: ReloadCallback | None = None
    ) -> None:
        """Check the policy directory every ``interval`` seconds in a daemon thread.

        ``on_reload(changed, error)`` is called after every check (the webhook counts and
        logs reloads with it); without one, a rejected bundle is logged here."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def report(changed: bool, error: BaseException | None) -> None:
            if on_reload is not None:
                try:
                    on_reload(changed, error)
                except Exception:
                    log.exception("policy reload callback failed")
            elif isinstance(error, BundleError):
                log.error("policy bundle rejected, the previous one keeps serving: %s", error)
            elif error is not None:
                log.error("policy bundle watcher failed: %s", error)

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    changed = self.reload_if_changed()
                except Exception as e:  # the watcher must survive anything
                    report(False, e)
                else:
                    report(changed, None)

        self._watcher = threading.Thread(target=run, name=f"policy-watch-{self.name}", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=5)

    def close(self) -> None:
        self.stop_watching()
