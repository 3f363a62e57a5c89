"""Fingerprints of a work's file: its SHA-256 and, for texts and images, an ISCC-CODE (ISO 24138).

The SHA-256 finds exact copies; the ISCC-CODE also finds near copies, because similar content has nearby
Content-Codes. Both become identifiers of the work (schemes ``sha256`` and ``iscc``).
"""

from __future__ import annotations

import codecs
import hashlib
import struct
import typing
from dataclasses import dataclass

import iscc_core
from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageChops, ImageOps

from registry.errors import InvalidIdentifier

_WORK_KINDS = frozenset({"text", "image", "audio", "video", "software", "dataset", "other"})

_CHUNK_SIZE = 1024 * 1024

# gen_text_code needs the whole text in memory. Above this size a text's ISCC-CODE has only its Data- and
# Instance-Codes (an "ISCC-SUM"): still the standard codes for those bytes, so it matches what anyone else
# computes, and it finds byte-level near copies. A Text-Code from a truncated text would look like a
# similarity code for the whole work while ignoring most of it.
_TEXT_CONTENT_CODE_MAX_BYTES = 10 * 1024 * 1024

# Pillow raises these for files that are not images, are truncated or corrupt, or would decompress into
# more pixels than Image.MAX_IMAGE_PIXELS allows (a decompression bomb).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


@dataclass(frozen=True)
class Fingerprints:
    sha256: str  # 64 lower-case hex digits
    iscc: str | None  # "ISCC:..." for texts and images, None for other kinds


def fingerprint_file(*, file: typing.BinaryIO, kind: str) -> Fingerprints:
    """Fingerprint a work's file of the given work kind, reading it in chunks.

    Raises ``InvalidIdentifier`` with code ``unreadable_file`` (``field="file"``) when a text is not UTF-8
    or an image cannot be decoded. The file is left positioned at its start.
    """
    if kind not in _WORK_KINDS:
        raise ValueError(f"Unknown work kind {kind!r}.")
    with_iscc = kind in ("text", "image")

    # One pass feeds every hash that reads raw bytes, so a large file is read once, never held whole.
    sha256 = hashlib.sha256()
    data_hasher = iscc_core.DataHasher() if with_iscc else None
    instance_hasher = iscc_core.InstanceHasher() if with_iscc else None
    decoder = codecs.getincrementaldecoder("utf-8")() if kind == "text" else None
    text_parts: list[str] | None = [] if kind == "text" else None
    size = 0

    file.seek(0)
    while chunk := file.read(_CHUNK_SIZE):
        size += len(chunk)
        sha256.update(chunk)
        if data_hasher is not None and instance_hasher is not None:
            data_hasher.push(chunk)
            instance_hasher.push(chunk)
        if decoder is not None:
            # Even a text too large for a Text-Code is checked: a non-UTF-8 "text" is the wrong file.
            piece = _decode(decoder, chunk)
            if text_parts is not None and size <= _TEXT_CONTENT_CODE_MAX_BYTES:
                text_parts.append(piece)
            else:
                text_parts = None
    if decoder is not None:
        _decode(decoder, b"", final=True)
    file.seek(0)

    if data_hasher is None or instance_hasher is None:
        return Fingerprints(sha256=sha256.hexdigest(), iscc=None)

    units = [data_hasher.code(), instance_hasher.code()]
    if kind == "text" and text_parts is not None:
        units.insert(0, iscc_core.gen_text_code("".join(text_parts))["iscc"])
    elif kind == "image":
        units.insert(0, iscc_core.gen_image_code(_image_pixels(file))["iscc"])
        file.seek(0)
    iscc = str(iscc_core.gen_iscc_code(units)["iscc"])
    return Fingerprints(sha256=sha256.hexdigest(), iscc=iscc)


def _decode(decoder: codecs.IncrementalDecoder, chunk: bytes, *, final: bool = False) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError:
        raise InvalidIdentifier(
            _("The text file is not UTF-8 encoded; save it as UTF-8 and upload it again."),
            code="unreadable_file",
            field="file",
        ) from None


def _image_pixels(file: typing.BinaryIO) -> list[int]:
    """The 1024 gray values gen_image_code wants, prepared as iscc-sdk's ``image_normalize`` does.

    Transpose by EXIF orientation, put transparency on white, trim a uniform border, convert to gray and
    resize to 32x32 (bicubic), so our Image-Codes match those of other ISCC tools.
    """
    file.seek(0)
    try:
        with Image.open(file) as opened:
            image = ImageOps.exif_transpose(opened)
            image = _on_white(image)
            image = _trim_border(image)
            gray = image.convert("L").resize((32, 32), Image.Resampling.BICUBIC)
    except _IMAGE_ERRORS:
        raise InvalidIdentifier(
            _("The image file could not be read; upload it as JPEG, PNG, GIF, WebP or TIFF."),
            code="unreadable_file",
            field="file",
        ) from None
    return list(gray.tobytes())


def _on_white(image: Image.Image) -> Image.Image:
    """An RGB image with transparent areas painted white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _trim_border(image: Image.Image) -> Image.Image:
    """Crop a border of the top-left pixel's colour; the image must be RGB.

    On RGBA images Pillow's getbbox looks at the alpha channel only, which would silently skip the trim;
    that is why transparency is removed first.
    """
    background = Image.new(image.mode, image.size, image.getpixel((0, 0)))
    difference = ImageChops.difference(image, background)
    difference = ImageChops.add(difference, difference)
    box = difference.getbbox()
    # A uniform image has no box; it is kept whole.
    if box is None or box == (0, 0, *image.size):
        return image
    return image.crop(box)
