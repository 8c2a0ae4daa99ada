"""scripts/tools (`make tools`): a second run is a no-op, and a Go toolchain that cannot build
the pinned tools is refused up front with a message saying what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO_ROOT, TOOLS_BIN

DEBIAN = REPO_ROOT / "scripts" / "tools" / "00-debian.sh"
GO_MIN = next(
    line.split()[1]
    for line in (REPO_ROOT / "scripts" / "tools" / "k8s" / "go.mod").read_text().splitlines()
    if line.startswith("go ")
)
# what 00-debian.sh runs besides go (with every package installed, apt-get is never reached)
SCRIPT_COMMANDS = ("dirname", "dpkg-query", "grep", "awk", "sort", "id")
#: the opa-inprocess engine's library (scripts/tools/15-opalib.sh)
OPA_LIBRARY = REPO_ROOT / ".tools" / "lib" / "libmodelgate_opa.so"


def test_second_make_tools_run_rebuilds_nothing() -> None:
    binaries = [
        TOOLS_BIN / b for b in ("opa", "helm", "kube-apiserver", "kubectl", "verapdf", "hey")
    ]
    binaries.append(OPA_LIBRARY)
    before = {b: b.stat().st_mtime_ns for b in binaries}
    proc = subprocess.run(
        ["make", "--no-print-directory", "tools"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in ("opa ", "libmodelgate_opa:", "helm ", "kubernetes ", "hey "):
        cached = [ln for ln in proc.stdout.splitlines() if ln.startswith(line)]
        assert cached and cached[-1].endswith("(cached)"), proc.stdout
    assert "go build" not in proc.stdout + proc.stderr
    assert {b: b.stat().st_mtime_ns for b in binaries} == before


def _fake_go(bin_dir: Path, version: str, toolchain: str = "auto") -> None:
    """A `go` that only answers `go env NAME` (the script's questions)."""
    bin_dir.mkdir(exist_ok=True)
    go = bin_dir / "go"
    go.write_text(
        "#!/bin/sh\n"
        'case "$2" in\n'
        f"  GOVERSION) echo go{version} ;;\n"
        f"  GOTOOLCHAIN) echo {toolchain} ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    go.chmod(0o755)


def _system_bin(tmp_path: Path) -> Path:
    """A PATH directory with the script's other commands and no go."""
    d = tmp_path / "system"
    d.mkdir()
    for name in SCRIPT_COMMANDS:
        found = shutil.which(name)
        assert found, name
        (d / name).symlink_to(found)
    return d


def _run_debian(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(DEBIAN)],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_current_go_is_accepted() -> None:
    proc = _run_debian(os.environ["PATH"])
    assert proc.returncode == 0, proc.stderr
    assert "debian packages: ok" in proc.stdout
    assert "go " in proc.stdout and ": ok" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("version", "toolchain", "reason"),
    [
        ("1.19.8", "auto", "found go 1.19.8"),  # Debian bookworm's golang-go
        ("1.22.5", "local", "found go 1.22.5 with GOTOOLCHAIN=local"),
    ],
)
def test_too_old_go_is_refused_naming_the_required_version(
    tmp_path: Path, version: str, toolchain: str, reason: str
) -> None:
    _fake_go(tmp_path / "bin", version, toolchain)
    proc = _run_debian(f"{tmp_path / 'bin'}:{_system_bin(tmp_path)}")
    assert proc.returncode == 1
    assert f"go >= {GO_MIN} is required to build the pinned tools ({reason})" in proc.stderr
    assert "put its bin directory on PATH" in proc.stderr


def test_go_that_switches_toolchains_itself_is_accepted(tmp_path: Path) -> None:
    _fake_go(tmp_path / "bin", "1.22.5", "auto")
    proc = _run_debian(f"{tmp_path / 'bin'}:{_system_bin(tmp_path)}")
    assert proc.returncode == 0, proc.stderr
    assert f"switches to go {GO_MIN} itself" in proc.stdout


def test_missing_go_is_refused(tmp_path: Path) -> None:
    proc = _run_debian(str(_system_bin(tmp_path)))
    assert proc.returncode == 1
    assert "(no go on PATH)" in proc.stderr


def test_an_edited_opalib_module_is_rebuilt() -> None:
    """The library's stamp is the hash of its module's files: a checkout whose Go source
    differs from the one the library was built from rebuilds it (an unchanged one does not)."""
    stamp = OPA_LIBRARY.with_name(OPA_LIBRARY.name + ".stamp")
    script = REPO_ROOT / "scripts" / "tools" / "15-opalib.sh"
    saved = stamp.read_text()
    try:
        stamp.write_text("0" * 64 + "\n")  # as if built from other sources
        proc = subprocess.run(
            ["/bin/bash", str(script)], capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "libmodelgate_opa: built in" in proc.stdout
        assert stamp.read_text() == saved
        again = subprocess.run(
            ["/bin/bash", str(script)], capture_output=True, text=True, timeout=120, check=False
        )
        assert again.stdout.strip() == "libmodelgate_opa: ok (cached)", again.stdout
    finally:
        if stamp.read_text() != saved:
            stamp.write_text(saved)
