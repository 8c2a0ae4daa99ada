"""Settings from the environment: bad values are one clear SettingsError, never a crash later."""

from __future__ import annotations

import pytest

from modelgate.settings import Settings, SettingsError


def test_defaults_are_the_embedded_ones() -> None:
    s = Settings.from_env({})
    assert s.database_url == "sqlite:///modelgate.db"
    assert s.policy_engine == "embedded"
    assert s.cluster_name == "default"
    assert s.failure_mode == "closed"
    assert s.log_level == "INFO"


def test_numbers_and_log_level_are_converted() -> None:
    s = Settings.from_env(
        {
            "MODELGATE_POLICY_TIMEOUT_SECONDS": "0.5",
            "MODELGATE_POLICY_RELOAD_SECONDS": "0",
            "MODELGATE_MAX_REQUEST_BYTES": "1024",
            "MODELGATE_LOG_LEVEL": " debug ",
        }
    )
    assert (s.policy_timeout_seconds, s.policy_reload_seconds) == (0.5, 0.0)
    assert s.max_request_bytes == 1024
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("MODELGATE_LOG_LEVEL", "LOUD", "MODELGATE_LOG_LEVEL must be one of DEBUG, INFO"),
        ("MODELGATE_POLICY_TIMEOUT_SECONDS", "0", "must be positive"),
        ("MODELGATE_POLICY_TIMEOUT_SECONDS", "-1", "must be positive"),
        ("MODELGATE_POLICY_TIMEOUT_SECONDS", "nan", "invalid value 'nan'"),
        ("MODELGATE_POLICY_TIMEOUT_SECONDS", "soon", "invalid value 'soon'"),
        ("MODELGATE_MAX_REQUEST_BYTES", "0", "must be positive"),
        ("MODELGATE_MAX_REQUEST_BYTES", "3MB", "invalid value '3MB'"),
        ("MODELGATE_POLICY_RELOAD_SECONDS", "-2", "must be 0 or more"),
        ("MODELGATE_POLICY_ENGINE", "wasm", "one of embedded, opa, opa-inprocess"),
        ("MODELGATE_FAILURE_MODE", "maybe", "'closed' or 'open'"),
        ("MODELGATE_AUTO_MIGRATE", "perhaps", "invalid value 'perhaps'"),
    ],
)
def test_bad_values_are_a_settings_error_naming_the_variable(
    variable: str, value: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env({variable: value})
    assert fragment in str(e.value)


def test_serve_reports_a_bad_log_level_without_a_traceback() -> None:
    from click.testing import CliRunner

    from modelgate.cli import main

    result = CliRunner().invoke(
        main,
        ["serve", "--tls-cert", __file__, "--tls-key", __file__],
        env={"MODELGATE_LOG_LEVEL": "LOUD"},
    )
    assert result.exit_code == 1
    assert "MODELGATE_LOG_LEVEL must be one of" in result.output
    assert "Traceback" not in result.output


def test_scan_interval_is_seconds_and_must_be_positive() -> None:
    assert Settings.from_env({}).scan_interval_seconds == 86400.0
    assert (
        Settings.from_env({"MODELGATE_SCAN_INTERVAL_SECONDS": "3600"}).scan_interval_seconds
        == 3600.0
    )
    for bad in ("0", "-5", "daily"):
        with pytest.raises(SettingsError, match=r"(?i)scan_interval_seconds"):
            Settings.from_env({"MODELGATE_SCAN_INTERVAL_SECONDS": bad})
