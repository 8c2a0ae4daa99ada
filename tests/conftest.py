"""Shared test setup. Fixtures for real components live in tests/fixtures/ (one module each)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
os.environ["PATH"] = f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.postgres",
    "tests.fixtures.opa",
    "tests.fixtures.cluster",
    "tests.fixtures.inventory",
    "tests.fixtures.browser",
    "tests.fixtures.dex",
]
