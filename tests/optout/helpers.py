"""Helpers shared by the refusal and lookup tests."""

from __future__ import annotations

import io
import random
from typing import Any

import iscc_core
from PIL import Image, ImageDraw, ImageFilter


def refuse(client: Any, **body: Any) -> Any:
    """File a refusal through the API (for AI training unless ``purposes`` says otherwise); its JSON."""
    response = client.post("/api/v1/refusals", {"purposes": ["train-ai"], **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def image_iscc(bits: int, modality: Any = iscc_core.ST_CC.IMAGE) -> str:
    """A Content-Code unit of ``modality`` whose 64 bits are ``bits``."""
    return "ISCC:" + str(
        iscc_core.encode_component(iscc_core.MT.CONTENT, modality, iscc_core.VS.V0, 64, bits.to_bytes(8, "big"))
    )


def flip(bits: int, count: int, *, seed: int = 7) -> int:
    """``bits`` with ``count`` distinct bits flipped."""
    for position in random.Random(seed).sample(range(64), count):
        bits ^= 1 << position
    return bits


def photo() -> Image.Image:
    """A picture with the structure of a photograph: gradients, shapes and texture, not flat noise."""
    rng = random.Random(3)
    image = Image.new("RGB", (640, 480))
    draw = ImageDraw.Draw(image)
    for y in range(480):
        draw.line([(0, y), (640, y)], fill=(40 + y // 4, 90 + y // 8, 200 - y // 3))
    for _ in range(40):
        x, y, r = rng.randrange(640), rng.randrange(480), rng.randrange(10, 90)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(2))


def encoded(image: Image.Image, fmt: str, **options: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    buffer.seek(0)
    return buffer
