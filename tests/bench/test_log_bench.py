"""Verification benchmark of the decision log: ``modelgate log verify`` over one million
chained entries (SQLite and PostgreSQL), in a child process whose wall time is the benchmark
and whose peak RSS shows that verification streams (``extra_info["peak_rss_mib"]``).

Under ``make bench`` (``MODELGATE_BENCH_SCALE=full``) the log has 1,000,000 entries; in
``make test`` the same test runs on 20,000 so that it checks correctness without the minutes
of setup.
The child's CPU time (user + system) goes into ``extra_info["cpu_seconds"]``: on a shared
machine it says more than the wall time (the database server's own work is not in it).
The entries are generated with :func:`modelgate.inventory.chain.link` (the writer's own
chaining) and bulk-loaded, then verified: the assertions check that the log verifies and
that every entry was read, not how fast it was.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from sqlalchemy.engine import make_url

from modelgate.inventory import chain
from modelgate.inventory.migrate import upgrade

pytestmark = pytest.mark.benchmark

FULL = 1_000_000
QUICK = 20_000
BATCH = 20_000
MAX_RSS_MIB = 300
T0 = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = [c.name for c in chain.LOGS["decisions"].logged_columns] + list(chain.CHAIN_COLUMNS)


def _batches(total: int) -> Iterator[list[dict[str, Any]]]:
    log = chain.LOGS["decisions"]
    head = chain.Head("decisions", 0, chain.genesis("decisions"))
    for start in range(0, total, BATCH):
        rows: list[dict[str, Any]] = []
        for n in range(start, min(total, start + BATCH)):
            denied = n % 7 == 0
            rows.append(
                {
                    "event_id": f"bench-{n:08d}",
                    "time": T0 + timedelta(seconds=n, microseconds=n % 1000),
                    "uid": f"uid-{n}",
                    "user": "system:serviceaccount:ci:deployer",
                    "operation": "CREATE" if n % 3 else "UPDATE",
                    "cluster": "prod-eu",
                    "kind": "Deployment",
                    "namespace": f"team-{n % 40:02d}",
                    "name": f"model-{n % 5000:04d}",
                    "allowed": not denied,
                    "is_model": True,
                    "model_name": f"model-{n % 5000:04d}",
                    "model_version": f"1.{n % 17}.0",
                    "violations": ['missing required annotation "modelgate.dev/owner"']
                    if denied
                    else [],
                    "warnings": [],
                    "enforcement": "enforce",
                    "bundle_digest": "sha256:" + "ab" * 32,
                    "engine": "embedded",
                    "error": None,
                    "caller_verified": None,  # nullable columns: left out of the hash
                    "approvals": None,
                }
            )
        chain.link(log, head, rows)
        yield rows


def _load_sqlite(url: str, total: int) -> None:
    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path)
    placeholders = ", ".join("?" for _ in COLUMNS)
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    last: tuple[int, str] = (0, "")
    with conn:
        for rows in _batches(total):
            conn.executemany(
                f"INSERT INTO decisions ({names}) VALUES ({placeholders})",
                [
                    tuple(
                        r[c].strftime("%Y-%m-%d %H:%M:%S.%f")
                        if c == "time"
                        else json.dumps(r[c])
                        if c in ("violations", "warnings")
                        else r[c]
                        for c in COLUMNS
                    )
                    for r in rows
                ],
            )
            last = (rows[-1]["seq"], rows[-1]["entry_hash"])
        conn.execute("UPDATE log_heads SET seq = ?, entry_hash = ? WHERE log = 'decisions'", last)
    conn.close()


def _load_postgres(url: str, total: int) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    last: tuple[int, str] = (0, "")
    with psycopg.connect(dsn) as conn:
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        with conn.cursor() as cur:
            for rows in _batches(total):
                buffer = io.StringIO()
                for r in rows:
                    buffer.write("\t".join(_copy_text(c, r[c]) for c in COLUMNS) + "\n")
                with cur.copy(f"COPY decisions ({names}) FROM STDIN") as copy:
                    copy.write(buffer.getvalue())
                last = (rows[-1]["seq"], rows[-1]["entry_hash"])
            cur.execute(
                "UPDATE log_heads SET seq = %s, entry_hash = %s WHERE log = 'decisions'", last
            )


def _copy_text(column: str, value: Any) -> str:
    if value is None:
        return "\\N"
    if column == "time":
        return str(value.isoformat())
    if column in ("violations", "warnings"):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool):
        text = "t" if value else "f"
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@pytest.fixture(params=["sqlite", "postgres"])
def loaded(
    request: pytest.FixtureRequest, tmp_path: Path, pytestconfig: pytest.Config
) -> tuple[str, int]:
    total = FULL if os.environ.get("MODELGATE_BENCH_SCALE") == "full" else QUICK
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inventory.db'}"
        upgrade(url)
        _load_sqlite(url, total)
    else:
        url = request.getfixturevalue("postgres_db_url")
        upgrade(url)
        _load_postgres(url, total)
    return url, total


#: ``modelgate`` in a child that reports its own peak RSS (VmHWM of its address space) and
#: CPU time on stderr at exit: the rusage of a child forked from this (large) pytest process
#: counts the parent's pages it held before exec
PEAK_REPORTING_CLI = """
import atexit, resource, sys

def _report():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                sys.stderr.write("VmHWM %s\\n" % line.split()[1])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write("CPU %.3f\\n" % (usage.ru_utime + usage.ru_stime))

atexit.register(_report)
from modelgate.cli import main
sys.argv[0] = "modelgate"
main()
"""


@pytest.mark.timeout(3600)  # loading a million entries takes minutes on a shared machine
def test_verify_a_million_entries(benchmark: BenchmarkFixture, loaded: tuple[str, int]) -> None:
    url, total = loaded

    def verify() -> tuple[int, float, float, dict[str, Any]]:
        env = {**os.environ, "MODELGATE_DATABASE_URL": url}
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK_REPORTING_CLI, "log", "verify", "--output", "json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = proc.communicate()
        hwm = re.search(rb"^VmHWM\s+(\d+)$", err, re.M)
        assert hwm, err.decode(errors="replace")[-2000:]
        cpu_line = re.search(rb"^CPU\s+([0-9.]+)$", err, re.M)
        assert cpu_line, err.decode(errors="replace")[-2000:]
        return proc.returncode, int(hwm[1]) / 1024, float(cpu_line[1]), json.loads(out)

    code, peak_mib, cpu, doc = benchmark.pedantic(verify, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    report, approval_log = doc["logs"]  # the decision log first; the approval log is empty
    assert (report["log"], approval_log["log"]) == ("decisions", "approval_log")
    assert code == 0, report["problems"][:5]
    assert report["intact"] and report["entries"] == total and report["last_seq"] == total
    benchmark.extra_info["entries"] = total
    benchmark.extra_info["peak_rss_mib"] = round(peak_mib, 1)
    benchmark.extra_info["cpu_seconds"] = round(cpu, 1)
    print(f"\nverified {total} entries: peak RSS {peak_mib:.0f} MiB, CPU {cpu:.1f} s")
    assert peak_mib < MAX_RSS_MIB, f"peak RSS {peak_mib:.0f} MiB: verification must stream"
