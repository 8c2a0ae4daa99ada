"""Concurrent writers on one real PostgreSQL never fork the chains: two ``modelgate serve``
processes (two gunicorn workers each) taking admission requests at the same time, two
recorder processes appending batches at the same time, and sign-off writers appending to
the approval log while a recorder registers denied versions in it."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from modelgate.inventory import chain, migrate
from modelgate.inventory.db import Database
from tests.fixtures.tools import free_port
from tests.inventory.test_chain import decision
from tests.webhook.reviews import COMPLIANT, deployment, review
from webhook.tls import DevCertificates, write_dev_certificates


def _serve(
    url: str, certs: DevCertificates, workdir: Path, name: str
) -> tuple[str, subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(
        MODELGATE_DATABASE_URL=url,
        MODELGATE_CLUSTER_NAME=name,
        MODELGATE_SPOOL_DIR=str(workdir / f"spool-{name}"),
    )
    port = free_port()
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "modelgate.cli", "serve",
            "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
            "--workers", "2", "--threads", "4",
        ],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    return f"https://127.0.0.1:{port}", proc


@pytest.fixture
def two_webhooks(
    postgres_db_url: str, tmp_path: Path
) -> Iterator[tuple[str, list[str], DevCertificates]]:
    migrate.upgrade(postgres_db_url)
    certs = write_dev_certificates(tmp_path / "tls", common_name="chain")
    served = [_serve(postgres_db_url, certs, tmp_path, name) for name in ("replica-a", "replica-b")]
    try:
        deadline = time.monotonic() + 90
        for base, proc in served:
            while True:
                assert proc.poll() is None, (tmp_path / "replica-a.log").read_text()
                try:
                    ok = requests.get(base + "/readyz", verify=str(certs.ca_cert), timeout=5)
                    if ok.status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "webhooks not ready in 90 s"
                time.sleep(0.2)
        yield postgres_db_url, [base for base, _ in served], certs
    finally:
        for _, proc in served:
            proc.terminate()
        for _, proc in served:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM decisions")).scalar() or 0)


def test_two_webhook_processes_never_fork_the_chain(
    two_webhooks: tuple[str, list[str], DevCertificates],
) -> None:
    url, bases, certs = two_webhooks
    per_replica = 120

    def send(args: tuple[str, int]) -> int:
        base, n = args
        annotations = {**COMPLIANT, "modelgate.dev/model-version": f"1.0.{n}"}
        body = review(deployment(f"model-{n}", annotations=annotations), uid=f"u-{base[-5:]}-{n}")
        return requests.post(
            base + "/validate", json=body, verify=str(certs.ca_cert), timeout=60
        ).status_code

    jobs = [(base, n) for n in range(per_replica) for base in bases]
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(send, jobs)) == {200}

    db = Database(url)
    try:
        deadline = time.monotonic() + 120
        while _count(db) < len(jobs):
            assert time.monotonic() < deadline, f"{_count(db)} of {len(jobs)} recorded"
            time.sleep(0.2)
        with db.engine.connect() as conn:
            seqs = conn.execute(text("SELECT seq FROM decisions ORDER BY seq")).scalars().all()
            clusters = set(conn.execute(text("SELECT DISTINCT cluster FROM decisions")).scalars())
        assert seqs == list(range(1, len(jobs) + 1))
        assert clusters == {"replica-a", "replica-b"}  # both really wrote
        (report,) = chain.verify(db, ["decisions"])
        assert report["intact"], report["problems"]
        assert report["entries"] == len(jobs)
    finally:
        db.dispose()


def _append(url: str, worker: int, batches: int, size: int) -> None:
    from modelgate.events import SubmittedEvent
    from modelgate.inventory.writes import apply_events

    db = Database(url)
    try:
        for b in range(batches):
            items = [
                SubmittedEvent(f"w{worker}-{b}-{i}", decision(b * size + i)) for i in range(size)
            ]
            with db.session() as session:
                apply_events(session, items)
    finally:
        db.dispose()


def test_two_recorder_processes_appending_batches_never_fork_the_chain(
    postgres_db_url: str,
) -> None:
    migrate.upgrade(postgres_db_url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(postgres_db_url, w, 20, 25)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
        assert p.exitcode == 0
    db = Database(postgres_db_url)
    try:
        assert _count(db) == 1000
        (report,) = chain.verify(db, ["decisions"])
        assert report["intact"] and report["last_seq"] == 1000, report["problems"]
    finally:
        db.dispose()


def _sign_off(url: str, worker: int, versions: int, start: Any) -> None:
    from datetime import UTC, datetime

    from modelgate.identity import Identity
    from modelgate.inventory import signoff
    from policies.config import PolicyConfig

    config, today = PolicyConfig(), datetime.now(UTC).date()
    db = Database(url)
    try:
        start.wait(timeout=120)
        for n in range(versions):
            version = f"{worker}.{n}"
            signoff.register_version(
                db,
                model="shared-model",
                version=version,
                metadata={
                    "owner": f"owner-{worker}@example.com",
                    "training-date": "2026-01-01",
                    "training-data": "s3://d",
                },
                actor=Identity(f"owner-{worker}@example.com"),
                config=config,
            )
            signoff.record_approval(
                db,
                model="shared-model",
                version=version,
                decision="approved",
                actor=Identity(f"approver-{worker}@example.com", ("model-risk",)),
                reason="ok",
                config=config,
                today=today,
            )
    finally:
        db.dispose()


def _register_denied(url: str, batches: int, size: int, start: Any) -> None:
    from dataclasses import replace

    from modelgate.events import SubmittedEvent
    from modelgate.inventory.writes import apply_events
    from tests.fixtures.inventory import admit_event, model_manifest

    db = Database(url)
    try:
        start.wait(timeout=120)
        for b in range(batches):
            items = []
            for i in range(size):
                obj = model_manifest(model="shared-model", version=f"denied.{b}.{i}")
                denied = replace(
                    admit_event("prod", obj),
                    allowed=False,
                    violations=("not approved",),
                    enforcement="enforce",
                )
                items.append(SubmittedEvent(f"denied-{b}-{i}", denied))
            with db.session() as session:
                apply_events(session, items)
    finally:
        db.dispose()


def test_concurrent_sign_off_writes_and_registrations_never_fork_the_approval_log(
    postgres_db_url: str,
) -> None:
    migrate.upgrade(postgres_db_url)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    versions, batches, size = 25, 10, 5
    workers = [
        *(
            context.Process(target=_sign_off, args=(postgres_db_url, w, versions, start))
            for w in range(2)
        ),
        context.Process(target=_register_denied, args=(postgres_db_url, batches, size, start)),
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
        assert p.exitcode == 0
    expected = 2 * versions * 2 + batches * size  # register + approve each; one per denial
    db = Database(postgres_db_url)
    try:
        with db.engine.connect() as conn:
            seqs = conn.execute(text("SELECT seq FROM approval_log ORDER BY seq")).scalars().all()
            actions = dict(
                conn.execute(
                    text("SELECT action, count(*) FROM approval_log GROUP BY action")
                ).all()
            )
        assert seqs == list(range(1, expected + 1))
        assert actions == {"register": 2 * versions + batches * size, "approve": 2 * versions}
        reports = {r["log"]: r for r in chain.verify(db)}
        assert reports["approval_log"]["intact"], reports["approval_log"]["problems"]
        assert reports["approval_log"]["last_seq"] == expected
        assert reports["decisions"]["intact"], reports["decisions"]["problems"]
        assert reports["decisions"]["last_seq"] == batches * size
    finally:
        db.dispose()
