"""The webhook's in-memory snapshot of recorded sign-off: ``input.registry`` for every model
version, so an admission never waits for the database.

A background thread reloads the whole snapshot every ``MODELGATE_APPROVAL_REFRESH_SECONDS``
(default 2 s, so it is never more than a few seconds stale). On PostgreSQL a second thread
``LISTEN``s on :data:`~modelgate.inventory.models.REGISTRY_CHANNEL`, which the sign-off
tables' triggers notify on every write, and wakes the loader at once: an approval reaches
the webhook within a second. When the database does not answer, the last snapshot keeps
serving and :meth:`ApprovalRegistry.status` says how old it is (``/readyz`` shows it); before
the first load every model version is unapproved (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypedDict

from sqlalchemy.engine import make_url

from modelgate.approvals import RegistryEntry, SignOffRef, admitted_by, unregistered_entry
from modelgate.inventory.db import Database, InventoryError, SchemaMissing, redact
from modelgate.inventory.models import REGISTRY_CHANNEL
from modelgate.inventory.signoff import registry_entries
from modelgate.settings import Settings
from modelgate.workload import Workload
from policies.config import PolicyConfig

log = logging.getLogger("modelgate.registry")

Loader = Callable[[], Mapping[tuple[str, str], RegistryEntry]]


class RegistryStatus(TypedDict):
    loaded: bool
    age_seconds: float | None  # since the last successful load
    versions: int
    error: str | None  # the last load's error, while it fails
    listening: bool  # PostgreSQL notifications arrive


def version_of(workload: Workload) -> tuple[str, str]:
    """The (model name, version) a workload's metadata names (``""`` when absent)."""
    md = workload.get("metadata") or {}
    return (str(md.get("model-name") or "").strip(), str(md.get("model-version") or "").strip())


class ApprovalRegistry:
    """The snapshot, its loader thread and (on PostgreSQL) its notification listener."""

    def __init__(
        self,
        database: Database,
        *,
        cluster: str,
        refresh_seconds: float = 2.0,
        listen: bool = True,
        loader: Loader | None = None,
    ) -> None:
        self.database = database
        self.cluster = cluster
        self.refresh_seconds = refresh_seconds
        self._loader: Loader = loader or (lambda: registry_entries(database, cluster))
        self._entries: Mapping[tuple[str, str], RegistryEntry] = {}
        self._loaded_at: float | None = None  # monotonic
        self._error: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listen = listen and database.backend == "postgresql"
        self._listening = False
        self.loads = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Database | None = None
    ) -> ApprovalRegistry:
        return cls(
            database or Database(settings.database_url),
            cluster=settings.cluster_name,
            refresh_seconds=settings.approval_refresh_seconds,
        )

    # -- serving -----------------------------------------------------------------------

    def entry(self, model: str, version: str) -> RegistryEntry:
        """``input.registry`` for ``model`` ``version`` (an empty, unregistered entry when the
        snapshot does not hold it)."""
        found = self._entries.get((model, version))
        return found if found is not None else unregistered_entry(self.cluster, model, version)

    def entry_for(self, workload: Workload) -> RegistryEntry:
        return self.entry(*version_of(workload))

    def admitting(
        self,
        entry: Mapping[str, Any],
        workload: Workload,
        *,
        today: date,
        config: PolicyConfig,
    ) -> tuple[SignOffRef, ...]:
        """The recorded sign-off that admits ``workload`` with ``entry`` (for the decision
        log): the counted approvals, or the exemption."""
        md = workload.get("metadata") or {}
        tier = str(md.get("risk-tier") or "").strip().lower() or config.default_risk_tier
        refs = admitted_by(
            entry,  # type: ignore[arg-type]
            risk_tier=tier,
            namespace=workload["namespace"],
            today=today,
            config=config,
        )
        return tuple(refs)

    def status(self) -> RegistryStatus:
        loaded_at = self._loaded_at
        return RegistryStatus(
            loaded=loaded_at is not None,
            age_seconds=None if loaded_at is None else round(time.monotonic() - loaded_at, 3),
            versions=len(self._entries),
            error=self._error,
            listening=self._listening,
        )

    # -- loading -----------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload the snapshot now; False (the last one kept) when the database fails."""
        try:
            entries = dict(self._loader())
        except SchemaMissing:
            # a database not created yet (the recorder creates it on its first write): it
            # holds no sign-off, so the snapshot is empty, and admission denies unapproved
            # versions as it would with the tables there
            entries = {}
        except (InventoryError, Exception) as e:  # never let a load kill the thread
            message = str(e) or type(e).__name__
            if message != self._error:
                log.error(
                    "approval snapshot not reloaded (the last one keeps serving): %s", message
                )
            self._error = message
            return False
        with self._lock:
            self._entries = entries
            self._loaded_at = time.monotonic()
            self.loads += 1
        if self._error is not None:
            log.info("approval snapshot reloaded (%d versions)", len(entries))
        self._error = None
        return True

    def notify(self) -> None:
        """Wake the loader (a sign-off write happened)."""
        self._wake.set()

    def start(self) -> ApprovalRegistry:
        """Load once (synchronously) and start the background threads."""
        if self._threads:
            return self
        self.refresh()
        self._threads.append(
            threading.Thread(target=self._run, name="modelgate-registry", daemon=True)
        )
        if self._listen:
            self._threads.append(
                threading.Thread(
                    target=self._listen_loop, name="modelgate-registry-listen", daemon=True
                )
            )
        for t in self._threads:
            t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.refresh_seconds)
            if self._stop.is_set():
                return
            self._wake.clear()
            self.refresh()

    # -- PostgreSQL notifications --------------------------------------------------------

    def _conninfo(self) -> str:
        url = make_url(self.database.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _listen_loop(self) -> None:
        import psycopg

        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {REGISTRY_CHANNEL}")
                    self._listening = True
                    backoff = 0.5
                    self.notify()  # anything written while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.notify()
            except Exception as e:
                if self._listening:
                    log.warning(
                        "approval notifications from %s lost (%s); polling every %gs until "
                        "they are back",
                        redact(self.database.url),
                        type(e).__name__,
                        self.refresh_seconds,
                    )
                self._listening = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self._listening = False

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=3)
        self._threads.clear()
