"""What reading a work file's embedded rights metadata adds to its fingerprinting job.

The job (registry/work_files.py) reads the file a second time for its C2PA manifest and XMP packet. This measures,
per kind of file, the time of ``embedded_rights_read`` next to the time of ``fingerprint_file`` on the same bytes:
a 12-megapixel JPEG with and without a signed C2PA manifest (the certificate chain is generated here, as in the
tests), the same with an XMP packet, a PNG, and a 1 MB text (C2PA does not read text; the reader gives up at once).

    REGISTRY_TESTING=1 .venv/bin/python bench/embedded_rights.py [--rounds 5]

No database is needed. Figures are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("REGISTRY_TESTING", "1")

import django

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from registry.embedded_rights import embedded_rights_read  # noqa: E402
from registry.fingerprints import fingerprint_file  # noqa: E402
from tests.registry.test_embedded_rights import c2pa_sign, xmp_inserted  # noqa: E402


def photo(width: int = 4000, height: int = 3000) -> bytes:
    rng = np.random.default_rng(1)
    # Smooth gradients with noise: compresses like a photograph (a few MB), not like a flat colour.
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png(width: int = 2000, height: int = 1500) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def timed(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fingerprints(data: bytes, kind: str) -> object:
    return fingerprint_file(file=io.BytesIO(data), kind=kind)


def _embedded(data: bytes) -> object:
    return embedded_rights_read(file=io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    jpeg = photo()
    files = {
        "JPEG 12 MP": ("image", jpeg),
        "JPEG 12 MP + C2PA": ("image", c2pa_sign(jpeg, {"ai_training": "notAllowed"})),
        "JPEG 12 MP + XMP": ("image", xmp_inserted(jpeg, "DMI-PROHIBITED-AIMLTRAINING")),
        "PNG 3 MP": ("image", png()),
        "text 1 MB": (
            "text",
            ("저작권자는 AI 학습을 거부할 수 있습니다. Rights holders may refuse.\n" * 14_000).encode(),
        ),
    }
    print(f"{'file':<22}{'size':>10}{'fingerprints':>15}{'embedded rights':>18}{'share':>8}")
    for name, (kind, data) in files.items():
        prints = timed(partial(_fingerprints, data, kind), args.rounds)
        rights = timed(partial(_embedded, data), args.rounds)
        print(
            f"{name:<22}{len(data) / 1e6:>8.2f}MB{prints * 1000:>13.0f}ms{rights * 1000:>16.1f}ms"
            f"{rights / (prints + rights):>8.1%}"
        )


if __name__ == "__main__":
    main()
