"""`modelgate policy test` and `modelgate policy check` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelgate.cli import main
from policies.bundle import load_bundle
from tests.policies.samples import POLICY_DIR

SMALL_POLICY = """package demo

allow if input.user == "alice"

is_admin(name) if name in {"root", "admin"}
"""

SMALL_TESTS = """package demo_test

import data.demo

test_data_is_loaded_passes if data.demo.config.limit == 3

test_admin_names_are_admins_passes if demo.is_admin("root")

test_unknown_user_is_not_allowed_passes if not demo.allow
"""


@pytest.fixture
def small_bundle(tmp_path: Path) -> Path:
    root = tmp_path / "small"
    (root / "demo" / "config").mkdir(parents=True)
    (root / "demo" / "demo.rego").write_text(SMALL_POLICY)
    (root / "demo" / "demo_test.rego").write_text(SMALL_TESTS)
    (root / "demo" / "config" / "data.yaml").write_text("limit: 3\n")
    return root


def test_policy_test_runs_the_shipped_tests_with_opa() -> None:
    result = CliRunner().invoke(main, ["policy", "test", "--policy-dir", str(POLICY_DIR)])
    assert result.exit_code == 0, result.output
    assert "running `opa test`" in result.output
    assert "test_missing_owner_names_key_and_fix: PASS" in result.output
    assert "FAIL" not in result.output


def test_policy_test_exits_1_when_a_test_fails(small_bundle: Path) -> None:
    tests = small_bundle / "demo" / "demo_test.rego"
    tests.write_text(tests.read_text() + "\ntest_wrong_expectation_fails if demo.allow\n")
    result = CliRunner().invoke(main, ["policy", "test", "--policy-dir", str(small_bundle)])
    assert result.exit_code == 1
    assert "test_wrong_expectation_fails: FAIL" in result.output


def test_regopy_runner_passes_and_fails_per_test(small_bundle: Path) -> None:
    args = ["policy", "test", "--runner", "regopy", "--policy-dir", str(small_bundle)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "PASS: data.demo_test.test_data_is_loaded_passes" in result.output
    assert "PASS: 3/3" in result.output
    tests = small_bundle / "demo" / "demo_test.rego"
    tests.write_text(tests.read_text() + "\ntest_wrong_expectation_fails if demo.allow\n")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "FAIL: data.demo_test.test_wrong_expectation_fails" in result.output
    assert "PASS: 3/4" in result.output


def test_regopy_runner_survives_a_rego_cpp_crash(small_bundle: Path) -> None:
    # rego-cpp 1.5 aborts on `with input as` around a rule calling a function
    (small_bundle / "demo" / "extra.rego").write_text(
        "package demo\n\nadmin_user if is_admin(input.user)\n"
    )
    (small_bundle / "demo" / "extra_test.rego").write_text(
        "package extra_test\n\nimport data.demo\n\n"
        'test_with_input_crashes if demo.admin_user with input as {"user": "root"}\n'
    )
    args = ["policy", "test", "--runner", "regopy", "--policy-dir", str(small_bundle)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    # a crash is not reported as a failing test, but as a test that could not be run
    assert "ERROR: data.extra_test.test_with_input_crashes (not run: rego-cpp crashed)" in (
        result.output
    )
    assert "PASS: 3/4, ERROR: 1" in result.output
    assert "1 of 4 tests could not be run" in result.output
    assert "make tools" in result.output
    # the other test modules still ran
    assert "PASS: data.demo_test.test_unknown_user_is_not_allowed_passes" in result.output


def test_policy_test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["policy", "test", "--policy-dir", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_policy_check_prints_the_digest() -> None:
    result = CliRunner().invoke(main, ["policy", "check", "--policy-dir", str(POLICY_DIR)])
    assert result.exit_code == 0, result.output
    assert f"digest:  {load_bundle(POLICY_DIR).digest}" in result.output
    assert "engine:  embedded" in result.output


def test_policy_check_rejects_a_broken_bundle(small_bundle: Path) -> None:
    (small_bundle / "demo" / "demo.rego").write_text(
        SMALL_POLICY + "\nbroken if {\n\tinput.x ==\n}\n"
    )
    result = CliRunner().invoke(main, ["policy", "check", "--policy-dir", str(small_bundle)])
    assert result.exit_code == 1
    assert "does not compile" in result.output
    assert "demo/demo.rego:8:10: Invalid boolean operator" in result.output
