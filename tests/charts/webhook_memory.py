"""Measure the memory of one webhook container the way the chart runs it, for its `resources`.

    .venv/bin/python -m tests.charts.webhook_memory [--workers 2] [--reviews 600] [--sqlite]

Starts the real ``modelgate serve`` (as tests/webhook/serving.py's ``Serve`` does, with the
chart's engine: an OPA process standing in for the sidecar, MODELGATE_POLICY_ENGINE=opa,
recorded sign-off, a spool) on PostgreSQL (the chart's database; ``--sqlite`` for SQLite),
sends ``--reviews`` AdmissionReviews of distinct model versions from 16 threads, then runs
``hey`` at 16 connections ``--rounds`` times for ``--hey-seconds`` each (the total PSS after
each round shows whether memory settles), and prints, idle after start, under load (the peak
of samples taken every 0.5 s) and 10 s after the load, the RSS and the PSS
(``/proc/PID/smaps_rollup``) of the supervisor, each worker and each worker's writer child
(``python -m modelgate.inventory.writer``), and their sums. PSS counts a page shared by N
processes 1/N in each, so its sum is what the container's memory cgroup is charged for the
processes' mappings (the sum of RSS counts pages shared after fork once per process). The OPA
process is not counted: the sidecar has resources of its own (``opa.resources``).

Not a test (it takes minutes and measures, it asserts nothing): the chart README quotes its
output next to the `resources` value.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.opa import OpaProcess
from tests.fixtures.tools import tool
from tests.webhook.reviews import COMPLIANT, deployment, review
from tests.webhook.serving import Serve, clean_env, modelgate

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    role: str
    pid: int
    rss: int  # bytes
    pss: int  # bytes


def _children(pid: int) -> list[int]:
    # per thread: the writer child is started by the recorder's thread, not the main one
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def _args(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _rollup(pid: int) -> tuple[int, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    return fields["Rss"], fields["Pss"]


def sample(supervisor: int) -> list[Sample]:
    """The supervisor, its workers and their writer children (evaluators too, if any)."""
    found: list[Sample] = []

    def add(role: str, pid: int) -> None:
        try:
            rss, pss = _rollup(pid)
        except (OSError, KeyError):
            return  # exited meanwhile
        found.append(Sample(role, pid, rss, pss))

    add("supervisor", supervisor)
    for worker in _children(supervisor):
        add("worker", worker)
        for child in _children(worker):
            add("writer" if "modelgate.inventory.writer" in _args(child) else "child", child)
    return found


def _total(samples: list[Sample]) -> tuple[int, int]:
    return sum(s.rss for s in samples), sum(s.pss for s in samples)


def report(label: str, samples: list[Sample]) -> None:
    rss, pss = _total(samples)
    print(f"\n{label}: {len(samples)} processes, RSS {rss / MIB:.0f} MiB, PSS {pss / MIB:.0f} MiB")
    for s in samples:
        print(f"  {s.role:<10} {s.pid:>7}  RSS {s.rss / MIB:6.1f} MiB  PSS {s.pss / MIB:6.1f} MiB")


@contextmanager
def database(sqlite: bool, workdir: Path) -> Iterator[str]:
    if sqlite:
        yield f"sqlite:///{workdir / 'inventory.db'}"
        return
    from tests.fixtures.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server.url(server.create_database())
    finally:
        server.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--reviews", type=int, default=600)
    parser.add_argument("--hey-seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="hey runs, PSS after each")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    opts = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="modelgate-memory-"))
    opa = OpaProcess().start()
    try:
        with database(opts.sqlite, workdir) as url:
            env = clean_env(
                MODELGATE_DATABASE_URL=url,
                MODELGATE_SPOOL_DIR=str(workdir / "spool"),
                MODELGATE_READY_WITHOUT_DATABASE="true",
                MODELGATE_POLICY_ENGINE="opa",
                MODELGATE_OPA_URL=opa.url,
                MODELGATE_APPROVAL_SOURCE="inventory",  # the chart's default
            )
            subprocess.run(modelgate("db", "upgrade"), env=env, cwd=workdir, check=True)
            args = ["--workers", str(opts.workers), "--threads", str(opts.threads)]
            serve = Serve(workdir, env, args).start()
            try:
                serve.wait_ready(path="/readyz")
                assert serve.proc is not None
                pid = serve.proc.pid
                time.sleep(3)
                report("idle after start", sample(pid))

                peak: list[Sample] = []
                stop = threading.Event()

                def watch() -> None:
                    nonlocal peak
                    while not stop.is_set():
                        now = sample(pid)
                        if _total(now)[1] > _total(peak)[1]:
                            peak = now
                        time.sleep(0.5)

                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()

                def send(i: int) -> int:
                    obj = deployment(
                        f"model-{i % 50}",
                        annotations={**COMPLIANT, "modelgate.dev/model-version": f"1.{i}.0"},
                    )
                    return serve.post(review(obj, uid=f"memory-{i}")).status_code

                with ThreadPoolExecutor(16) as pool:
                    statuses = list(pool.map(send, range(opts.reviews)))
                print(f"\n{opts.reviews} distinct reviews: statuses {sorted(set(statuses))}")
                print(f"  after them: PSS {_total(sample(pid))[1] / MIB:.0f} MiB")
                body = workdir / "review.json"
                body.write_text(json.dumps(review(deployment("fraud", annotations=COMPLIANT))))
                for n in range(1, opts.rounds + 1):
                    out = subprocess.run(
                        [tool("hey"), "-z", f"{opts.hey_seconds}s", "-c", "16", "-m", "POST",
                         "-T", "application/json", "-D", str(body), serve.base + "/validate"],
                        capture_output=True, text=True, check=True,
                    ).stdout  # fmt: skip
                    rps = [ln.split()[-1] for ln in out.splitlines() if "Requests/sec" in ln]
                    codes = [" ".join(ln.split()) for ln in out.splitlines() if "responses" in ln]
                    print(
                        f"hey round {n}, 16 connections, {opts.hey_seconds} s: {rps} req/s, "
                        f"{codes}; PSS now {_total(sample(pid))[1] / MIB:.0f} MiB"
                    )
                stop.set()
                watcher.join()
                report("peak under load", peak)
                time.sleep(10)
                report("settled, 10 s after the load", sample(pid))
            finally:
                serve.stop()
    finally:
        opa.close()


if __name__ == "__main__":
    main()
