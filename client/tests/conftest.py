from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_registry import FakeRegistry, serve
from optout_client.testing import TestKey


@pytest.fixture(scope="session")
def test_key() -> TestKey:
    return TestKey.generate()


@pytest.fixture
def fake_registry(test_key: TestKey) -> Iterator[FakeRegistry]:
    with serve(FakeRegistry(key=test_key)) as registry:
        yield registry
