"""Scale benchmark of the auditor: a generated snapshot of 10,000 workloads (a third of them
model workloads, 2,000 of those admitted, some drifted, some retired) scanned and reconciled
against a seeded inventory.

The scan runs as ``modelgate audit --manifests DIR --export F`` in a child process: its wall
time is the benchmark, its peak RSS goes into ``extra_info["peak_rss_mib"]``; the assertions
check that the scan found what the generator planted, not how fast it was.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from auditor.discovery.manifests import ManifestsSource
from modelgate.inventory import audit
from modelgate.inventory.db import Database
from modelgate.inventory.migrate import upgrade
from modelgate.inventory.recorder import Recorder
from tests.fixtures.inventory import admit_event, deployment, metadata, write_snapshot

pytestmark = pytest.mark.benchmark

WORKLOADS = 10_000
MODEL_EVERY = 3  # every third workload is a model
ADMITTED = 2_000
DRIFTED = 100
RETIRED = 50
MAX_RSS_MIB = 400


def _objects() -> list[dict[str, Any]]:
    rng = random.Random(7)
    objects: list[dict[str, Any]] = []
    for i in range(WORKLOADS):
        ns = f"team-{i % 40:02d}"
        if i % MODEL_EVERY == 0:
            n = i // MODEL_EVERY
            objects.append(
                deployment(
                    f"model-{n:05d}",
                    ns,
                    image=f"registry.example.com/m{n}:{'2.0' if n < DRIFTED else '1.0'}",
                    annotations=metadata(model_name=f"model-{n:05d}", model_version="1.0"),
                    replicas=rng.randint(1, 4),
                )
            )
        else:
            objects.append(deployment(f"web-{i:05d}", ns, image="nginx:1.27", model=False))
    return objects


def test_ten_thousand_workload_snapshot_scan(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    upgrade(url)
    db = Database(url)
    objects = _objects()
    snap = tmp_path / "scale"
    snap.mkdir()
    for i in range(0, len(objects), 500):  # JSON lists, as `kubectl get -o json` exports
        (snap / f"part-{i // 500:03d}.json").write_text(json.dumps(objects[i : i + 500]))
    recorder = Recorder(database=db, batch_size=200)
    models = [o for o in objects if o["metadata"]["labels"].get("modelgate.dev/model")]
    for n, obj in enumerate(models[:ADMITTED]):
        admitted = (
            obj if n >= DRIFTED else {**obj, "spec": _image(obj, f"registry.example.com/m{n}:1.0")}
        )
        recorder.submit(admit_event("scale", admitted))
    for n in range(RETIRED):
        recorder.submit(
            admit_event("scale", deployment(f"retired-{n:03d}", "team-00", annotations=metadata()))
        )
    assert recorder.flush(timeout=300)
    recorder.close()
    del objects, models

    export = tmp_path / "export.json"

    def scan() -> tuple[int, float]:
        """``modelgate audit`` in a child process; returns (exit status, peak RSS in MiB)."""
        env = {**os.environ, "MODELGATE_DATABASE_URL": url}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelgate.cli",
                "audit",
                "--manifests",
                str(snap),
                "--export",
                str(export),
                "--no-progress",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_maxrss / 1024

    code, peak_mib = benchmark.pedantic(scan, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    assert code == 0
    # bounded: a few hundred MiB whatever the snapshot size (10,000 workloads leaked ~2 GiB
    # when rego-cpp was loaded after greenlet, see auditor/__init__.py)
    assert peak_mib < MAX_RSS_MIB, f"peak RSS {peak_mib:.0f} MiB"

    doc = json.loads(export.read_text(encoding="utf-8"))
    summary = doc["scan"]["summary"]
    benchmark.extra_info["workloads"] = summary["workloads"]
    benchmark.extra_info["peak_rss_mib"] = round(peak_mib, 1)
    benchmark.extra_info["findings"] = summary["findings"]
    model_count = len(range(0, WORKLOADS, MODEL_EVERY))
    assert summary["workloads"] == WORKLOADS
    assert summary["models"] == model_count
    assert summary["findings"]["orphan"] == model_count - ADMITTED
    assert summary["findings"]["drift"] == DRIFTED
    assert summary["findings"]["retired"] == RETIRED
    assert len(doc["findings"]) == sum(summary["findings"].values())
    assert len(audit.scan_findings_of(db, doc["scan"]["id"])) == len(doc["findings"])
    db.dispose()


def _image(obj: dict[str, Any], image: str) -> dict[str, Any]:
    spec = dict(obj["spec"])
    template = dict(spec["template"])
    pod = dict(template["spec"])
    pod["containers"] = [{**pod["containers"][0], "image": image}]
    template["spec"] = pod
    spec["template"] = template
    return spec


def test_manifests_source_streams_documents(tmp_path: Path) -> None:
    """The source yields while reading: the first workload arrives before later files exist
    in memory (a generator, not a list)."""
    snap = write_snapshot(tmp_path / "s", [deployment(f"m{i}") for i in range(5)], per_file=1)
    stream = ManifestsSource(snap).discover()
    first = next(stream)
    assert first.workload["name"] == "m0"
    (snap / "part-0004.yaml").unlink()  # not read yet: the stream simply ends earlier
    assert [d.workload["name"] for d in stream] == ["m1", "m2", "m3"]
