"""Fingerprints of a work's file: its SHA-256 and, for texts, images and audio, an ISCC-CODE (ISO 24138).

The SHA-256 finds exact copies; the ISCC-CODE also finds near copies, because similar content has nearby
Content-Codes. Both become identifiers of the work (schemes ``sha256`` and ``iscc``).

Audio's Content-Code is computed from Chromaprint features, which Chromaprint's ``fpcalc`` (Debian
``libchromaprint-tools``) extracts, as iscc-sdk does. Without ``fpcalc`` an audio file's ISCC-CODE has only its
Data- and Instance-Codes, and ``Fingerprints.audio_code_missing`` says why.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


# Why an audio file's ISCC-CODE has no Audio-Code (``Fingerprints.audio_code_missing``).
AUDIO_FPCALC_MISSING = "fpcalc_missing"
AUDIO_FPCALC_TIMEOUT = "fpcalc_timeout"

# What the owner reads about a missing Audio-Code.
AUDIO_CODE_MISSING_REASONS = {
    AUDIO_FPCALC_MISSING: _(
        "The Audio-Code was not computed: the registry's audio fingerprinting tool (fpcalc) is not installed. "
        "The file's SHA-256 and its Data- and Instance-Codes were."
    ),
    AUDIO_FPCALC_TIMEOUT: _(
        "The Audio-Code was not computed: reading the audio took longer than allowed. "
        "The file's SHA-256 and its Data- and Instance-Codes were."
    ),
}

# fpcalc's own default; the service passes the WORK_FILE_AUDIO_* settings.
DEFAULT_AUDIO_MAX_SECONDS = 120
DEFAULT_AUDIO_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Fingerprints:
    sha256: str  # 64 lower-case hex digits
    iscc: str | None  # "ISCC:..." for texts, images and audio, None for other kinds
    # For audio: None when the Audio-Code was computed, else why not (AUDIO_FPCALC_MISSING, AUDIO_FPCALC_TIMEOUT).
    audio_code_missing: str | None = None


class AudioCodeUnavailable(Exception):
    """fpcalc could not be run (not installed, or too slow): the file is fine, the tool is not."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fpcalc_path() -> str | None:
    """Where ``fpcalc`` is, or None; the deployment check warns when it is missing."""
    return shutil.which("fpcalc")


def audio_features(
    path: str | os.PathLike[str],
    *,
    max_seconds: int = DEFAULT_AUDIO_MAX_SECONDS,
    timeout: float = DEFAULT_AUDIO_TIMEOUT_SECONDS,
) -> list[int]:
    """The Chromaprint features (signed 32-bit integers) of the first ``max_seconds`` of an audio file.

    Runs ``fpcalc -raw -json -signed``, as iscc-sdk does: ``gen_audio_code`` wants signed integers. Raises
    ``AudioCodeUnavailable`` when fpcalc is missing or exceeds ``timeout``, and ``InvalidIdentifier``
    (``unreadable_file``) when fpcalc cannot decode the file.
    """
    program = fpcalc_path()
    if program is None:
        raise AudioCodeUnavailable(AUDIO_FPCALC_MISSING)
    command = [program, "-raw", "-json", "-signed", "-length", str(max_seconds), os.fspath(path)]
    try:
        # No shell, a fixed program and our own file's path: nothing of the uploader reaches the command line.
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AudioCodeUnavailable(AUDIO_FPCALC_TIMEOUT) from None
    # fpcalc 1.5.1 with FFmpeg 5 (Debian 12) exits 3 with "Error decoding audio frame (End of file)" after printing
    # a complete fingerprint, so the exit status alone does not say whether it read the file: its output does.
    try:
        features = json.loads(done.stdout)["fingerprint"]
    except (ValueError, KeyError, TypeError):
        features = None
    if not isinstance(features, list) or not features or not all(isinstance(value, int) for value in features):
        raise InvalidIdentifier(
            _("The audio file could not be read; upload it as WAV, FLAC, MP3, Ogg or another common format."),
            code="unreadable_file",
            field="file",
        )
    return features


def fingerprint_file(
    *,
    file: typing.BinaryIO,
    kind: str,
    path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    audio_max_seconds: int = DEFAULT_AUDIO_MAX_SECONDS,
    audio_timeout: float = DEFAULT_AUDIO_TIMEOUT_SECONDS,
) -> Fingerprints:
    """Fingerprint a work's file of the given work kind, reading it in chunks.

    ``path``, for audio, is where fpcalc reads the same bytes; without it the bytes are copied to a temporary
    file as they are read. ``on_progress`` is called with the bytes read so far after each chunk.

    Raises ``InvalidIdentifier`` with code ``unreadable_file`` (``field="file"``) when a text is not UTF-8,
    an image cannot be decoded or fpcalc cannot read an audio file. The file is left positioned at its start.
    """
    if kind not in _WORK_KINDS:
        raise ValueError(f"Unknown work kind {kind!r}.")
    if kind == "audio" and path is None:
        with tempfile.NamedTemporaryFile(prefix="registry-audio-") as copy:
            return _fingerprint(
                file,
                kind,
                Path(copy.name),
                copy,
                on_progress,
                audio_max_seconds=audio_max_seconds,
                audio_timeout=audio_timeout,
            )
    return _fingerprint(
        file, kind, path, None, on_progress, audio_max_seconds=audio_max_seconds, audio_timeout=audio_timeout
    )


def _fingerprint(
    file: typing.BinaryIO,
    kind: str,
    path: str | os.PathLike[str] | None,
    copy: typing.IO[bytes] | None,
    on_progress: Callable[[int], None] | None,
    *,
    audio_max_seconds: int,
    audio_timeout: float,
) -> Fingerprints:
    with_iscc = kind in ("text", "image", "audio")

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
        if copy is not None:
            copy.write(chunk)
        if on_progress is not None:
            on_progress(size)
    if decoder is not None:
        _decode(decoder, b"", final=True)
    file.seek(0)
    if copy is not None:
        copy.flush()

    if data_hasher is None or instance_hasher is None:
        return Fingerprints(sha256=sha256.hexdigest(), iscc=None)

    units = [data_hasher.code(), instance_hasher.code()]
    audio_code_missing = None
    if kind == "text" and text_parts is not None:
        units.insert(0, iscc_core.gen_text_code("".join(text_parts))["iscc"])
    elif kind == "image":
        units.insert(0, iscc_core.gen_image_code(image_pixels(file))["iscc"])
        file.seek(0)
    elif kind == "audio" and path is not None:
        try:
            features = audio_features(path, max_seconds=audio_max_seconds, timeout=audio_timeout)
        except AudioCodeUnavailable as unavailable:
            audio_code_missing = unavailable.reason
        else:
            units.insert(0, iscc_core.gen_audio_code(features)["iscc"])
    iscc = str(iscc_core.gen_iscc_code(units)["iscc"])
    return Fingerprints(sha256=sha256.hexdigest(), iscc=iscc, audio_code_missing=audio_code_missing)


def _decode(decoder: codecs.IncrementalDecoder, chunk: bytes, *, final: bool = False) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError:
        raise InvalidIdentifier(
            _("The text file is not UTF-8 encoded; save it as UTF-8 and upload it again."),
            code="unreadable_file",
            field="file",
        ) from None


def image_pixels(file: typing.BinaryIO) -> list[int]:
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
