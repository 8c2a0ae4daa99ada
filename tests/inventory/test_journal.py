"""The recorder's journal: queued decisions survive a process killed before its batch
committed (the next recorder on the spool directory replays them, none twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from modelgate.events import SubmittedEvent, event_to_json
from modelgate.inventory import journal
from modelgate.inventory.db import Database
from modelgate.inventory.models import Decision
from modelgate.inventory.recorder import Recorder
from modelgate.settings import Settings
from tests.fixtures.inventory import EventFactory


def _decisions(db: Database) -> tuple[int, int]:
    with db.read() as s:
        total = s.execute(select(func.count()).select_from(Decision)).scalar_one()
        distinct = s.execute(select(func.count(func.distinct(Decision.event_id)))).scalar_one()
    return int(total), int(distinct)


def test_segments_go_once_their_events_are_done(tmp_path: Path, make_event: EventFactory) -> None:
    j = journal.Journal(tmp_path, "host", "tok")
    items = [SubmittedEvent(f"{n:032x}", make_event(name=f"w{n}")) for n in range(3)]
    for item in items:
        j.add(item)
    (segment,) = tmp_path.glob("journal__*.bin")
    assert [i.event_id for i in journal.read(segment)] == [i.event_id for i in items]
    assert oct(segment.stat().st_mode & 0o777) == "0o600"
    j.done(items[:2])
    assert j.pending() == 1
    j.close()
    assert segment.exists()  # one event still outstanding
    j.done(items[2:])
    assert not segment.exists()
    # a frame cut short (the process died in the middle of a write) ends the segment
    j2 = journal.Journal(tmp_path, "host", "tok2")
    for item in items:
        j2.add(item)
    (cut,) = tmp_path.glob("journal__*tok2*.bin")
    data = cut.read_bytes()
    cut.write_bytes(data[:-10])
    assert [i.event_id for i in journal.read(cut)] == [i.event_id for i in items[:2]]


KILLED = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from modelgate.events import event_from_json
    from modelgate.inventory.recorder import Recorder
    from modelgate.settings import Settings

    url, spool, events = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    # batches wait long to fill: nothing is committed when the process is killed
    recorder = Recorder(Settings(database_url=url, spool_dir=spool), batch_seconds=60,
                        batch_size=100_000, writer_process=sys.argv[4] == "1")
    for line in events.read_text().splitlines():
        recorder.submit(event_from_json(json.loads(line)))
    print("submitted", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("writer_process", [False, True], ids=["in-process", "writer-process"])
def test_a_killed_process_loses_none_of_its_queued_decisions(
    db_url: str, db: Database, tmp_path: Path, writer_process: bool, make_event: EventFactory
) -> None:
    spool = tmp_path / "spool"
    n = 300
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(json.dumps(event_to_json(make_event(name=f"w{i}"))) for i in range(n))
    )
    done = subprocess.run(
        [sys.executable, "-c", KILLED, db_url, str(spool), str(events), str(int(writer_process))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "submitted" in done.stdout
    assert _decisions(db) == (0, 0)  # none committed: without the journal all were lost
    assert list(spool.glob("journal__*.bin"))

    # the next recorder on the directory (a restarted worker or pod) replays it at start
    recorder = Recorder(Settings(database_url=db_url, spool_dir=spool))
    try:
        deadline = time.monotonic() + 60
        while _decisions(db)[0] < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _decisions(db) == (n, n)
        assert not list(spool.glob("*.bin"))  # replayed and removed
    finally:
        recorder.close()
    # a second replay of the same directory finds nothing and duplicates nothing
    again = Recorder(Settings(database_url=db_url, spool_dir=spool))
    again.flush(2)
    again.close()
    assert _decisions(db) == (n, n)


def test_committed_events_leave_no_journal_behind(
    db_url: str, db: Database, tmp_path: Path, make_event: EventFactory
) -> None:
    spool = tmp_path / "spool"
    recorder = Recorder(Settings(database_url=db_url, spool_dir=spool), batch_seconds=0.01)
    try:
        for i in range(50):
            recorder.submit(make_event(name=f"w{i}"))
        assert recorder.flush(20)
        assert recorder.journal is not None and recorder.journal.pending() == 0
    finally:
        recorder.close()
    assert not list(spool.glob("*.bin"))
    assert _decisions(db) == (50, 50)
