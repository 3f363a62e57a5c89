"""The Hugging Face ``datasets`` example (examples/hf_datasets_filter.py) runs and drops what the registry refuses.

Skipped unless the ``datasets`` extra is installed: pip install './client[datasets]'.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from optout_client import Registry
from optout_client.testing import SnapshotFiles, TestKey, install_local

EXAMPLE = Path(__file__).parent.parent / "examples" / "hf_datasets_filter.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hf_datasets_filter", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def copy(tmp_path: Path, test_key: TestKey) -> Path:
    install_local(
        tmp_path,
        SnapshotFiles(
            as_of=datetime(2026, 1, 1, tzinfo=UTC),
            cursor=1,
            keys={"train-ai": ["url:https://b.example/2", "isbn:9780306406157"]},
            url_prefixes=[
                {
                    "purpose": "train-ai",
                    "host": "news.example.kr",
                    "prefix": "https://news.example.kr/opinion/",
                    "refusal_id": 1,
                }
            ],
        ),
        test_key,
    )
    return tmp_path


def test_dataset_filter_batched_drops_refused_rows(copy: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "url": ["https://news.example.kr/opinion/1", "https://b.example/2", "HTTPS://B.example/3", None, "x"] * 40,
        "isbn": ["9780306406157", "0-306-40615-2", "9791234567896", "bad", None] * 40,
    }
    dataset = datasets.Dataset.from_dict(rows)
    registry = Registry.open(copy)
    example = _example()

    by_url = example.permitted_rows(dataset, registry, batch_size=16)
    by_isbn = example.permitted_rows(dataset, registry, column="isbn", scheme="isbn", batch_size=16)

    assert by_url["url"] == ["HTTPS://B.example/3"] * 40
    assert by_isbn["isbn"] == ["9791234567896"] * 40


def test_the_example_script_runs(copy: Path) -> None:
    pytest.importorskip("datasets")
    result = subprocess.run([sys.executable, str(EXAMPLE), str(copy)], capture_output=True, text=True, check=True)
    assert "kept 1 of 3 rows" in result.stdout
    assert "sports" in result.stdout
