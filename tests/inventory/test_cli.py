"""``modelgate db`` and ``modelgate models`` through click's CliRunner, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelgate.cli import main
from modelgate.inventory import migrate
from modelgate.inventory.recorder import Recorder
from modelgate.settings import Settings
from tests.fixtures.inventory import EventFactory
from tests.fixtures.tools import free_port


def _run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"MODELGATE_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def populated_url(db_url: str, make_event: EventFactory) -> str:
    rec = Recorder(Settings(database_url=db_url))
    try:
        rec.record(make_event(version="1.0.0", name="fraud-api"))
        rec.record(make_event(version="1.1.0", name="fraud-api", operation="UPDATE"))
        rec.record(make_event(version="1.1.0", name="fraud-batch", kind="CronJob"))
        rec.record(
            make_event(
                model="chat-summarizer",
                version="0.3.0",
                name="summarizer",
                owner="nlp@example.com",
                risk_tier="limited",
                compliance_status="exempt",
                exempt_reason="internal pilot",
                training_data="hf://datasets/chat-logs",
            )
        )
        # denied: registered as a pending-review version of chat-summarizer (same datasets)
        rec.record(
            make_event(
                model="chat-summarizer",
                allowed=False,
                violations=("bad",),
                training_data="hf://datasets/chat-logs",
            )
        )
    finally:
        rec.close()
    return db_url


def test_db_upgrade_current_and_downgrade(empty_url: str) -> None:
    code, out, err = _run(empty_url, "db", "current")
    assert code == 0, err
    assert "current: base" in out

    code, out, err = _run(empty_url, "db", "upgrade")
    assert code == 0, err
    assert f"at revision {migrate.head()}" in out
    assert migrate.current(empty_url) == migrate.head()

    code, out, err = _run(empty_url, "db", "downgrade", "base")
    assert code == 0, err
    assert migrate.current(empty_url) is None

    code, out, err = _run(empty_url, "db", "upgrade", "--revision", "0001_initial")
    assert code == 0, err
    assert migrate.current(empty_url) == "0001_initial"


def test_models_list_json_contract(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "list", "--output", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["chat-summarizer", "fraud-detector"]
    fraud = rows[1]
    assert fraud["version"] == "1.1.0"
    assert fraud["owner"] == "risk-ml@example.com"
    assert fraud["risk_tier"] == "high"
    assert fraud["compliance_status"] == "approved"
    assert fraud["deployments"] == 2
    chat = rows[0]
    assert (chat["compliance_status"], chat["risk_tier"], chat["deployments"]) == (
        "exempt",
        "limited",
        1,
    )


def test_models_list_table(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "OWNER", "RISK", "TIER", "STATUS", "DEPLOYMENTS"]
    assert lines[2].split() == [
        "fraud-detector",
        "1.1.0",
        "risk-ml@example.com",
        "high",
        "approved",
        "2",
    ]


def test_models_list_of_an_empty_inventory(db_url: str) -> None:
    assert _run(db_url, "models", "list", "-o", "json")[:2] == (0, "[]\n")
    code, out, _ = _run(db_url, "models", "list")
    assert code == 0 and "no models" in out


def test_models_show_json_has_versions_lineage_and_decisions(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "show", "fraud-detector", "--output", "json")
    assert code == 0, err
    detail = json.loads(out)
    assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]
    latest = detail["versions"][0]
    assert sorted(d["name"] for d in latest["deployments"]) == ["fraud-api", "fraud-batch"]
    assert detail["versions"][1]["deployments"] == []  # re-pointed to 1.1.0
    assert {
        "source_type": "training_run",
        "source": latest["training_run"]["run_ref"],
        "target_type": "model_version",
        "target": "fraud-detector@1.1.0",
    } in detail["lineage"]
    assert len(detail["decisions"]) == 3


def test_models_show_table(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "show", "chat-summarizer")
    assert code == 0, err
    assert "model: chat-summarizer" in out
    assert "version 0.3.0" in out
    assert "exempt reason: internal pilot" in out
    assert "training date: 2025-11-02\n" in out  # as written, not as a midnight date-time
    assert "iso-42001 (expires 2027-03-01)" in out
    assert "denied" in out and "violation: bad" in out


def test_models_show_of_an_unknown_model_exits_1(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "show", "nope")
    assert code == 1
    assert "no model named 'nope'" in err
    assert out == ""


def test_unreachable_database_is_one_clear_line_and_exit_2() -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/inventory"
    for args in (["models", "list"], ["models", "show", "x"], ["db", "upgrade"], ["db", "current"]):
        code, out, err = _run(url, *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: database postgresql+psycopg://postgres:***@127.0.0.1")
        assert "unavailable" in err
        assert "Traceback" not in err and "secret" not in err
        assert len(err.strip().splitlines()) == 1


def test_missing_schema_says_to_run_db_upgrade(empty_url: str) -> None:
    code, _, err = _run(empty_url, "models", "list")
    assert code == 2
    assert "run `modelgate db upgrade`" in err


def test_reading_commands_never_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    url = f"sqlite:///{path}"
    for args in (("models", "list"), ("models", "show", "x"), ("models", "list", "-o", "json")):
        code, out, err = _run(url, *args)
        assert code == 2, args
        assert out == ""
        assert f"no inventory database at {url} (file {path} does not exist)" in err
        assert "run `modelgate db upgrade`" in err
    code, out, err = _run(url, "db", "current")
    assert code == 0, err
    assert "current: base" in out
    assert not path.exists()
    code, _, err = _run(url, "db", "upgrade")
    assert code == 0, err
    assert path.exists()


def test_bad_database_url_is_exit_2() -> None:
    code, _, err = _run("mysql://x@y/z", "models", "list")
    assert code == 2
    assert "unsupported database" in err


def test_models_list_filters_by_owner_and_by_training_dataset(populated_url: str) -> None:
    code, out, err = _run(populated_url, "models", "list", "-o", "json", "--search", "NLP@")
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)] == ["chat-summarizer"]
    code, out, err = _run(populated_url, "models", "list", "-o", "json", "--dataset", "chargeback")
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)] == ["fraud-detector"]
    code, out, err = _run(populated_url, "models", "list", "-o", "json", "--dataset", "CHAT-logs")
    assert [r["name"] for r in json.loads(out)] == ["chat-summarizer"]
    code, out, err = _run(populated_url, "models", "list", "-o", "json", "--dataset", "nowhere")
    assert (code, json.loads(out)) == (0, [])
