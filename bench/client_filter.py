"""The lab-side client's offline filter rate and memory (issue 14, section 4), next to the API's batch rate.

Run with the client's venv (numpy and the test extra's cryptography, to sign the generated snapshot):

    client/.venv/bin/python bench/client_filter.py [--keys 1000000] [--items 1000000] [--memory-keys 10000000]
        [--api-rate ITEMS_PER_S] [--parquet-rows 1000000]

It writes a snapshot in the registry's format into a temporary directory (no server needed): ``--keys`` refused keys
for ``train-ai`` (40% ISBN-13, 30% DOI, 30% URL) and 1,000 refused URL prefixes, signed with a throwaway key, and
installs it as ``optout sync`` would. Then, pinned to one CPU, it times ``Registry.may_train_many`` over ``--items``
ISBNs, DOIs and URLs (a tenth of them refused; 1% of the ISBNs and URLs written in a form that needs the full
normalizer) in batches of 100,000, checks every answer against the truth, and prints items/s. A separate process
opens a snapshot of ``--memory-keys`` random hashes and filters a million ISBNs against it: its peak RSS is the
memory figure. ``--parquet-rows`` also times ``optout filter`` end to end on a Parquet file (0 to skip).

The API's batch rate is measured in the same run with ``--api-bench``: bench/lookup.py ``--wrk`` (the server's
``.venv`` and a PostgreSQL ``DATABASE_URL``, as bench/README.md describes), whose wrk figure for batches of 1,000
is printed next to the client's. ``--api-rate`` (items/s) or ``$OPTOUT_API_BATCH_RATE`` give one instead; without
any, the output says it is missing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from optout_client import Registry
from optout_client.fastkeys import key_batch
from optout_client.membership import hashes_of

BATCH = 100_000
GOALS = {"isbn": 1_000_000, "doi": 1_000_000, "url": 300_000}


def _peak_rss_mb() -> float:
    """VmHWM: this process's peak resident memory. (ru_maxrss would carry over the parent's peak through fork and
    exec on Linux.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def _pin_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return "not pinned"


def isbns(seed: int, count: int) -> list[str]:
    """``count`` random valid ISBN-13s, normalized."""
    rng = np.random.default_rng(seed)
    digits = np.empty((count, 13), dtype=np.int8)
    digits[:, 0], digits[:, 1] = 9, 7
    digits[:, 2] = rng.choice([8, 9], size=count)
    digits[:, 3:12] = rng.integers(0, 10, size=(count, 9))
    weights = np.array([1, 3] * 6, dtype=np.int16)
    digits[:, 12] = (10 - (digits[:, :12] * weights).sum(axis=1, dtype=np.int32) % 10) % 10
    text = (digits + 48).astype(np.uint8).tobytes().decode("ascii")
    return [text[i : i + 13] for i in range(0, 13 * count, 13)]


def dois(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    registrants = rng.integers(1000, 99999, size=count).tolist()
    suffixes = rng.integers(0, 10**12, size=count).tolist()
    return [f"10.{r}/j.{s:x}.2024" for r, s in zip(registrants, suffixes, strict=True)]


def urls(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    sites = rng.integers(0, 200_000, size=count).tolist()
    pages = rng.integers(0, 10**9, size=count).tolist()
    return [f"https://www.site{s}.example/articles/2024/{p}.html?ref=feed" for s, p in zip(sites, pages, strict=True)]


def _denormalize(kind: str, value: str) -> str:
    if kind == "isbn":
        return f"ISBN {value[:3]}-{value[3:]}"
    if kind == "url":
        return value.replace("https://www.", "HTTPS://WWW.", 1)
    return value


def build(directory: Path, keys: int) -> dict[str, int]:
    """Writes and installs a snapshot with ``keys`` refused train-ai keys; returns counts by kind."""
    from optout_client.testing import SnapshotFiles, TestKey, install_local

    counts = {"isbn": keys * 4 // 10, "doi": keys * 3 // 10}
    counts["url"] = keys - counts["isbn"] - counts["doi"]
    hashes = []
    for kind, make, seed in (("isbn", isbns, 1), ("doi", dois, 2), ("url", urls, 3)):
        batch = key_batch(kind, make(seed, counts[kind]))
        assert not batch.invalid
        hashes.append(hashes_of(batch.keys))
    membership = np.unique(np.concatenate(hashes)).astype(">u8").tobytes()
    prefixes = [
        {
            "purpose": "train-ai",
            "host": f"www.site{n}.example",
            "prefix": f"https://www.site{n}.example/private/",
            "refusal_id": n,
        }
        for n in range(1000)
    ]
    install_local(
        directory,
        SnapshotFiles(
            as_of=datetime.now(UTC),
            cursor=1,
            key_hashes={"train-ai": membership, "train-genai": b""},
            url_prefixes=prefixes,
        ),
        TestKey.generate(),
    )
    return counts


def items(kind: str, count: int, refused_pool: int) -> tuple[list[str], np.ndarray]:
    """``count`` items of ``kind``: every tenth from the refused keys, 1% in a spelling to normalize; the truth."""
    make = {"isbn": isbns, "doi": dois, "url": urls}[kind]
    seed = {"isbn": 1, "doi": 2, "url": 3}[kind]
    pool = make(seed, refused_pool)
    refused = pool[: count // 10]
    fresh = make(seed + 100, count - len(refused))
    values = refused + fresh
    # A fresh random value may be a refused one too (ISBNs: about 2 in 10,000).
    listed = set(pool)
    truth = np.fromiter((value in listed for value in values), dtype=bool, count=count)
    order = np.random.default_rng(seed + 7).permutation(count)
    values = [values[i] for i in order.tolist()]
    truth = truth[order]
    if kind in ("isbn", "url"):
        for position in range(0, count, 100):
            values[position] = _denormalize(kind, values[position])
    return values, truth


def measure(directory: Path, count: int, counts: dict[str, int]) -> dict[str, dict[str, float]]:
    copy = Registry.open(directory)
    copy.membership("train-ai")  # loaded once, as a filtering job would
    results = {}
    for kind in ("isbn", "doi", "url"):
        values, truth = items(kind, count, counts[kind])
        gc.collect()
        answers = []
        start = time.perf_counter()
        for offset in range(0, count, BATCH):
            answers.append(copy.classify_many(kind, values[offset : offset + BATCH], "train-ai"))
        elapsed = time.perf_counter() - start
        codes = np.concatenate(answers)
        not_permitted = codes != 0
        # Truth: the refused keys, plus the refused prefixes (none of the generated URLs is under one).
        assert (not_permitted == truth).all(), f"{kind}: {int((not_permitted != truth).sum())} wrong answers"
        results[kind] = {"items": count, "seconds": elapsed, "items_per_s": count / elapsed}
    return results


def memory_child(directory: Path) -> None:
    """In a fresh process: open the copy and filter a million ISBNs; print the peak RSS."""
    _pin_one_core()
    copy = Registry.open(directory)
    copy.membership("train-ai")
    loaded_mb = _peak_rss_mb()
    elapsed = 0.0
    removed = total = 0
    for batch in range(50):  # a million ISBNs, streamed as `optout filter` reads them (20,000 rows at a time)
        values = isbns(900 + batch, 20_000)
        start = time.perf_counter()
        removed += int((copy.classify_many("isbn", values, "train-ai") != 0).sum())
        elapsed += time.perf_counter() - start
        total += len(values)
    print(
        json.dumps(
            {
                "keys": len(copy.membership("train-ai")),
                "loaded_rss_mb": loaded_mb,
                "peak_rss_mb": _peak_rss_mb(),
                "isbn_items_per_s": total / elapsed,
                "removed": removed,
            }
        )
    )


def build_random(directory: Path, keys: int) -> None:
    from optout_client.testing import SnapshotFiles, TestKey, install_local

    rng = np.random.default_rng(11)
    table = np.unique(rng.integers(0, 2**64, size=keys, dtype=np.uint64))
    install_local(
        directory,
        SnapshotFiles(as_of=datetime.now(UTC), cursor=1, key_hashes={"train-ai": table.astype(">u8").tobytes()}),
        TestKey.generate(),
    )


def parquet_filter(directory: Path, work: Path, rows: int) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from optout_client.filter import filter_file

    values, _ = items("isbn", rows, rows)
    source = work / "dataset.parquet"
    pq.write_table(pa.table({"id": np.arange(rows), "isbn": values, "title": ["a title"] * rows}), source)
    copy = Registry.open(directory)
    copy.membership("train-ai")
    start = time.perf_counter()
    report = filter_file(
        copy,
        input_path=source,
        column="isbn",
        scheme="isbn",
        kept_path=work / "kept.parquet",
        removed_path=work / "removed.parquet",
        report_path=work / "report.json",
    )
    elapsed = time.perf_counter() - start
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "removed": report["counts"]["removed"]}


ROOT = Path(__file__).resolve().parents[1]


def api_batch_rate() -> float:
    """The API's batch rate (items/s, batches of 1,000 under wrk) from bench/lookup.py run now, with the server's
    .venv: the client's figures are printed next to it."""
    with tempfile.TemporaryDirectory(prefix="optout-api-bench-") as folder:
        summary = Path(folder) / "summary.json"
        command = [str(ROOT / ".venv/bin/python"), str(ROOT / "bench/lookup.py"), "--wrk", "--wrk-repeat", "1"]
        print("API: " + " ".join([*command[1:], "--summary-json", str(summary)]))
        # It exits 1 when a goal of its own fails; its figures are still written.
        subprocess.run([*command, "--summary-json", str(summary)], cwd=ROOT, check=False)
        if not summary.exists():
            raise SystemExit("bench/lookup.py wrote no figures (see its output above)")
        return float(json.loads(summary.read_text())["wrk_batch_items_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--memory-keys", type=int, default=10_000_000)
    parser.add_argument("--parquet-rows", type=int, default=1_000_000)
    parser.add_argument("--api-rate", type=float, default=None, help="the API's batch lookup rate, items/s")
    parser.add_argument(
        "--api-bench",
        action="store_true",
        help="measure the API's batch rate in this run with bench/lookup.py --wrk (server .venv, DATABASE_URL)",
    )
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.memory_child:
        memory_child(arguments.memory_child)
        return 0
    api_rate = arguments.api_rate or (
        float(os.environ["OPTOUT_API_BATCH_RATE"]) if os.environ.get("OPTOUT_API_BATCH_RATE") else None
    )
    api_source = "given"
    if arguments.api_bench:
        # Before pinning this process to one core: the server it starts must have both.
        api_rate, api_source = api_batch_rate(), "measured now by bench/lookup.py --wrk"
    pinned = _pin_one_core()
    with tempfile.TemporaryDirectory(prefix="optout-client-bench-") as temporary:
        work = Path(temporary)
        started = time.perf_counter()
        counts = build(work / "copy", arguments.keys)
        print(f"snapshot of {arguments.keys:,} refused keys built in {time.perf_counter() - started:.1f} s; {pinned}")
        results = measure(work / "copy", arguments.items, counts)
        print(f"\nmay_train_many, {arguments.items:,} items a kind, batches of {BATCH:,}, one core:")
        ok = True
        for kind, figure in results.items():
            goal = GOALS[kind]
            verdict = "PASS" if figure["items_per_s"] >= goal else "FAIL"
            ok &= verdict == "PASS"
            line = f"  {kind:5} {figure['items_per_s']:>12,.0f} items/s  (goal {goal:,}: {verdict})"
            if api_rate:
                line += f"  = {figure['items_per_s'] / api_rate:,.1f} x the API's batch rate"
            print(line)
        if api_rate:
            print(f"  API batch lookups: {api_rate:,.0f} items/s ({api_source})")
        else:
            print(
                "  API batch rate: not given (pass --api-rate N from bench/lookup.py's batch figure, or set "
                "$OPTOUT_API_BATCH_RATE); no ratio printed"
            )
        if arguments.parquet_rows:
            figure = parquet_filter(work / "copy", work, arguments.parquet_rows)
            print(
                f"\noptout filter, Parquet, {figure['rows']:,} rows (ISBN column, report included): "
                f"{figure['rows_per_s']:,.0f} rows/s ({figure['seconds']:.2f} s)"
            )
        if arguments.memory_keys:
            build_random(work / "memory", arguments.memory_keys)
            child = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(work / "memory")],
                capture_output=True,
                text=True,
                check=True,
            )
            memory = json.loads(child.stdout)
            verdict = "PASS" if memory["peak_rss_mb"] < 100 else "FAIL"
            ok &= verdict == "PASS"
            print(
                f"\nmemory: {memory['keys']:,} refused keys, a million ISBNs filtered: peak RSS "
                f"{memory['peak_rss_mb']:.1f} MB (goal under 100 MB: {verdict}); "
                f"{memory['isbn_items_per_s']:,.0f} items/s there"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
