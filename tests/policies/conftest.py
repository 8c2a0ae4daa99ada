from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.engines.embedded import EmbeddedEngine
from policies.engines.inprocess import InProcessOpaEngine
from tests.policies.samples import POLICY_DIR, copy_policies


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedEngine]:
    engine = EmbeddedEngine(POLICY_DIR)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def inprocess_engine() -> Iterator[InProcessOpaEngine]:
    """The shipped bundle in OPA's evaluator, loaded into this process."""
    engine = InProcessOpaEngine(POLICY_DIR, timeout=10)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """An editable copy of the shipped bundle."""
    return copy_policies(tmp_path)
