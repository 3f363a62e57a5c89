"""Filter a Hugging Face ``datasets.Dataset`` with the registry's offline copy.

    pip install 'optout-registry-client[datasets]'
    optout sync --registry https://registry.example --dir ./optout-registry      # once, then daily
    python hf_datasets_filter.py ./optout-registry

``Dataset.filter(..., batched=True)`` hands the function a batch of rows as columns (lists); ``may_train_many``
answers a whole column at once. Here each row has a ``url`` column, as in LAION-style image-text pairs; for ISBNs or
DOIs pass that scheme and column instead. Rows the registry does not permit (refused, ``license_required``, under a
refused URL prefix, or with an invalid identifier) are dropped.
"""

from __future__ import annotations

import sys
from typing import Any

from optout_client import Registry


def permitted_rows(
    dataset: Any,
    registry: Registry,
    *,
    column: str = "url",
    scheme: str = "url",
    purpose: str = "train-ai",
    batch_size: int = 10_000,
) -> Any:
    """The rows of ``dataset`` whose identifier in ``column`` may be used for ``purpose``."""

    def keep(batch: dict[str, list[Any]]) -> list[bool]:
        return registry.may_train_many(scheme, batch[column], purpose)  # type: ignore[no-any-return]

    # num_proc=1: the registry copy is opened once in this process (datasets would pickle it for workers).
    return dataset.filter(keep, batched=True, batch_size=batch_size)


def main(directory: str) -> None:
    from datasets import Dataset

    registry = Registry.open(directory)
    dataset = Dataset.from_dict(
        {
            "url": ["https://news.example.kr/opinion/1", "https://news.example.kr/sports/2", "not a url"],
            "caption": ["an opinion piece", "a match report", "broken row"],
        }
    )
    kept = permitted_rows(dataset, registry)
    print(f"snapshot {registry.snapshot_id} (cursor {registry.cursor}): kept {len(kept)} of {len(dataset)} rows")
    for row in kept:
        print(" ", row["url"], "-", row["caption"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "optout-registry")
