"""``modelgate policy``: run the bundle's Rego tests, compile-check the bundle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from modelgate.settings import Settings, SettingsError
from policies.bundle import load_bundle
from policies.engines.base import BundleError
from policies.engines.regotest import find_opa


def _settings(policy_dir: Path | None) -> Settings:
    try:
        return Settings.from_env(policy_dir=policy_dir)
    except SettingsError as e:
        raise click.ClickException(str(e)) from e


@click.group(name="policy")
def policy_group() -> None:
    """Work with the Rego policy bundle."""


@policy_group.command("test")
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Policy directory (default: MODELGATE_POLICY_DIR or the shipped bundle).",
)
@click.option(
    "--runner",
    type=click.Choice(["auto", "opa", "regopy"]),
    default="auto",
    show_default=True,
    help="opa test (reference), the rego-cpp fallback, or opa when found.",
)
def test_command(policy_dir: Path | None, runner: str) -> None:
    """Run the bundle's Rego unit tests (*_test.rego); exit 1 if any fails."""
    directory = _settings(policy_dir).policy_dir
    if not directory.is_dir():
        raise click.ClickException(f"policy directory {directory} does not exist")
    opa = find_opa() if runner in ("auto", "opa") else None
    if runner == "opa" and opa is None:
        raise click.ClickException("opa not found on PATH or in .tools/bin: run `make tools`")
    if opa is not None:
        click.echo(f"running `opa test` ({opa}) on {directory}")
        proc = subprocess.run(
            [opa, "test", str(directory), "-v"], capture_output=True, text=True, check=False
        )
        click.echo(proc.stdout, nl=False)
        if proc.stderr:
            click.echo(proc.stderr, nl=False, err=True)
        raise SystemExit(0 if proc.returncode == 0 else 1)

    from policies.engines.regotest import run_rego_tests

    if runner == "auto":
        click.echo(f"opa not found: running the tests in {directory} with rego-cpp")
    else:
        click.echo(f"running the tests in {directory} with rego-cpp")
    try:
        results = run_rego_tests(directory)
    except BundleError as e:
        raise click.ClickException(str(e)) from e
    failed = crashed = 0
    for result in results:
        if result.crashed:
            crashed += 1
            click.echo(f"ERROR: {result.name} (not run: rego-cpp crashed)")
            continue
        click.echo(f"{'PASS' if result.passed else 'FAIL'}: {result.name}")
        if not result.passed:
            failed += 1
            for line in result.error.splitlines()[:20]:
                click.echo(f"    {line}")
    click.echo("-" * 60)
    summary = f"PASS: {len(results) - failed - crashed}/{len(results)}"
    if failed:
        summary += f", FAIL: {failed}"
    if crashed:
        summary += f", ERROR: {crashed}"
    click.echo(summary)
    if crashed:
        click.echo(
            f"{crashed} of {len(results)} tests could not be run: rego-cpp crashes on `with` "
            "around rules that call functions (most policy tests). Install opa, the reference "
            "runner (`make tools`, or opa on PATH), and run `modelgate policy test` again.",
            err=True,
        )
    if failed or crashed or not results:
        if not results:
            click.echo("no tests found", err=True)
        raise SystemExit(1)


@policy_group.command("check")
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Policy directory (default: MODELGATE_POLICY_DIR or the shipped bundle).",
)
def check_command(policy_dir: Path | None) -> None:
    """Compile the bundle with the configured engine and print its digest."""
    settings = _settings(policy_dir)
    try:
        bundle = load_bundle(settings.policy_dir)
    except BundleError as e:
        raise click.ClickException(str(e)) from e
    from modelgate.engine import engine_for

    engine = engine_for(settings)
    try:
        if not engine.ready():
            reason = engine.last_error or "the policy engine is not ready"
            raise click.ClickException(reason)
        click.echo(f"engine:  {engine.name}")
        click.echo(f"bundle:  {settings.policy_dir}")
        click.echo(f"modules: {len(bundle.modules)} (+{len(bundle.test_modules)} test modules)")
        click.echo(f"digest:  {engine.bundle_digest}")
    finally:
        engine.close()
