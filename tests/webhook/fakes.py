"""Fakes of our own seams (PolicyEngine, the recorder) for the Flask test-client tests.

The real embedded engine and recorder are exercised in test_real_components.py and
test_serve.py; these fakes let the app's own behaviour (parsing, failure modes, metrics) be
tested without depending on the policy text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from modelgate.events import AdmissionEvent
from policies.config import PolicyConfig
from policies.engines.base import BundleError, EvaluationError, PolicyResult, ReloadCallback

REQUIRED = ("model-name", "model-version", "owner")


class FakeEngine:
    """Denies model workloads (label modelgate.dev/model=true) missing REQUIRED annotations."""

    name = "fake"

    def __init__(self, *, digest: str = "sha256:fake", config: PolicyConfig | None = None) -> None:
        self.digest = digest
        self._config = config or PolicyConfig()
        self.calls: list[Mapping[str, Any]] = []
        self.loaded = True
        self.reloads = 0
        self.reload_error: str | None = None
        self.closed = False
        self.watching: tuple[float, ReloadCallback | None] | None = None

    @property
    def bundle_digest(self) -> str:
        return self.digest if self.loaded else ""

    @property
    def config(self) -> PolicyConfig:
        return self._config

    @property
    def last_error(self) -> str | None:
        return self.reload_error

    def ready(self) -> bool:
        return self.loaded

    def start_watching(
        self, interval: float = 2.0, on_reload: ReloadCallback | None = None
    ) -> None:
        """Poll ``reload_if_changed`` like the real engines' watcher does."""
        self.watching = (interval, on_reload)

        def run() -> None:
            while not self.closed:
                time.sleep(interval)
                try:
                    changed = self.reload_if_changed()
                except Exception as e:
                    if on_reload is not None:
                        on_reload(False, e)
                else:
                    if on_reload is not None:
                        on_reload(changed, None)

        threading.Thread(target=run, daemon=True).start()

    def evaluate(
        self, policy_input: Mapping[str, Any], *, deadline: float | None = None
    ) -> PolicyResult:
        self.calls.append(policy_input)
        workload = policy_input["workload"]
        enforcement = policy_input.get("enforcement") or "enforce"
        if not workload["model_label"]:
            return PolicyResult(is_model=False, bundle_digest=self.digest)
        problems = tuple(
            f"missing annotation modelgate.dev/{key}"
            for key in REQUIRED
            if key not in workload["metadata"]
        )
        warn: tuple[str, ...] = ()
        if "certifications" in workload["metadata"]:
            warn = ("certification iso-42001 expires in 10 days (modelgate.dev/certifications)",)
        if enforcement == "warn":
            return PolicyResult(
                is_model=True,
                warn=problems + warn,
                violations=problems,
                enforcement="warn",
                bundle_digest=self.digest,
            )
        if enforcement == "off":
            return PolicyResult(is_model=True, enforcement="off", bundle_digest=self.digest)
        return PolicyResult(
            is_model=True,
            deny=problems,
            warn=warn,
            violations=problems,
            enforcement="enforce",
            bundle_digest=self.digest,
        )

    def reload_if_changed(self) -> bool:
        if self.reload_error:
            raise BundleError(self.reload_error)
        self.reloads += 1
        return True

    def close(self) -> None:
        self.closed = True


class FailingEngine(FakeEngine):
    def evaluate(
        self, policy_input: Mapping[str, Any], *, deadline: float | None = None
    ) -> PolicyResult:
        raise EvaluationError("rego evaluation exploded")


class SlowEngine(FakeEngine):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def evaluate(
        self, policy_input: Mapping[str, Any], *, deadline: float | None = None
    ) -> PolicyResult:
        time.sleep(self.delay)
        return super().evaluate(policy_input, deadline=deadline)


class FakeRecorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[AdmissionEvent] = []
        self.fail = fail
        self.is_healthy = True
        self.closed = False
        self._lock = threading.Lock()

    def submit(self, event: AdmissionEvent) -> None:
        if self.fail:
            raise RuntimeError("database is on fire")
        with self._lock:
            self.events.append(event)

    def healthy(self) -> bool:
        return self.is_healthy

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True
