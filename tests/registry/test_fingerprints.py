"""Fingerprints of a work's file (registry.fingerprints)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import wave

import iscc_core
import numpy as np
import pytest
from PIL import Image

from registry import fingerprints
from registry.errors import InvalidIdentifier
from registry.fingerprints import Fingerprints, fingerprint_file

# fmt: off
WORDS: tuple[str, ...] = (
    "the", "registry", "holds", "works", "and", "authors", "refuse", "training", "while", "labs", "read",
    "answers", "from", "seoul", "at", "night", "music", "books", "images", "news", "songs", "rivers", "light",
)
# fmt: on


def prose(seed: int, words: int = 400) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def units(iscc: str) -> dict[str, str]:
    """The ISCC-UNITs of an ISCC-CODE by main type name (CONTENT, DATA, INSTANCE)."""
    return {iscc_core.Code(unit).maintype.name: f"ISCC:{unit}" for unit in iscc_core.iscc_decompose(iscc)}


def reference_iscc(content_unit: str | None, data: bytes) -> str:
    codes = [
        iscc_core.gen_data_code(io.BytesIO(data))["iscc"],
        iscc_core.gen_instance_code(io.BytesIO(data))["iscc"],
    ]
    if content_unit is not None:
        codes.insert(0, content_unit)
    return str(iscc_core.gen_iscc_code(codes)["iscc"])


def png(image: Image.Image, **save_options: object) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_options)
    buffer.seek(0)
    return buffer


def picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """An RGB picture with structure, so its Image-Code is not degenerate."""
    image = Image.new("RGB", size)
    width, height = size
    image.putdata([((x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256) for y in range(height) for x in range(width)])
    return image


class ChunkedReader(io.BytesIO):
    """A file that fails the test if anyone reads it whole."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None, "read the whole file at once"
        assert size > 0, "read the whole file at once"
        self.largest_read = max(self.largest_read, size)
        return super().read(size)


# --- text ----------------------------------------------------------------------------------------------------


def test_text_gets_its_sha256_and_a_valid_iscc_code() -> None:
    data = "저작권자는 AI 학습을 거부할 수 있습니다. Rights holders may refuse AI training.\n".encode() * 20

    result = fingerprint_file(file=io.BytesIO(data), kind="text")

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.iscc is not None
    assert iscc_core.iscc_validate(result.iscc, strict=True)
    assert result.iscc == reference_iscc(iscc_core.gen_text_code(data.decode())["iscc"], data)
    assert set(units(result.iscc)) == {"CONTENT", "DATA", "INSTANCE"}


def test_slightly_edited_text_has_a_nearby_content_code_and_unrelated_text_does_not() -> None:
    original = prose(1)
    edited = original.replace("registry", "catalogue", 2)
    unrelated = prose(2)

    codes = [
        units(fingerprint_file(file=io.BytesIO(text.encode()), kind="text").iscc or "")["CONTENT"]
        for text in (original, edited, unrelated)
    ]

    near = iscc_core.iscc_distance(codes[0], codes[1])
    far = iscc_core.iscc_distance(codes[0], codes[2])
    assert near <= 8
    assert far >= 3 * max(near, 4)


def test_non_utf8_text_is_refused_as_unreadable() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO("한국어".encode("euc-kr")), kind="text")

    assert caught.value.code == "unreadable_file"
    assert caught.value.field == "file"


def test_text_cut_inside_a_utf8_sequence_is_refused_as_unreadable() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO("가".encode()[:2]), kind="text")

    assert caught.value.code == "unreadable_file"


def test_utf8_sequences_split_across_chunks_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "_CHUNK_SIZE", 7)
    data = "가나다라마바사 아자차카타파하 ".encode() * 30

    result = fingerprint_file(file=io.BytesIO(data), kind="text")

    assert result.iscc == reference_iscc(iscc_core.gen_text_code(data.decode())["iscc"], data)


def test_text_over_the_content_code_limit_gets_only_data_and_instance_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "_CHUNK_SIZE", 64)
    monkeypatch.setattr(fingerprints, "_TEXT_CONTENT_CODE_MAX_BYTES", 1000)
    data = prose(3).encode()
    assert len(data) > 1000

    result = fingerprint_file(file=io.BytesIO(data), kind="text")

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.iscc == reference_iscc(None, data)
    assert set(units(result.iscc)) == {"DATA", "INSTANCE"}


def test_large_text_over_the_limit_is_still_checked_for_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "_TEXT_CONTENT_CODE_MAX_BYTES", 10)

    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO(b"plain ascii first, then " + b"\xff"), kind="text")

    assert caught.value.code == "unreadable_file"


def test_empty_text_is_fingerprinted() -> None:
    result = fingerprint_file(file=io.BytesIO(b""), kind="text")

    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    assert result.iscc is not None
    assert iscc_core.iscc_validate(result.iscc, strict=True)


# --- streaming -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "video"])
def test_file_is_read_in_chunks_and_left_at_its_start(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "_CHUNK_SIZE", 1024)
    data = prose(4, words=2000).encode()
    file = ChunkedReader(data)
    file.seek(17)

    result = fingerprint_file(file=file, kind=kind)

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert file.largest_read == 1024
    assert file.tell() == 0
    if kind == "text":
        assert result.iscc == reference_iscc(iscc_core.gen_text_code(data.decode())["iscc"], data)


# --- images --------------------------------------------------------------------------------------------------


def test_png_gets_an_iscc_code_with_an_image_content_code() -> None:
    file = png(picture())
    data = file.getvalue()

    result = fingerprint_file(file=file, kind="image")

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.iscc is not None
    assert iscc_core.iscc_validate(result.iscc, strict=True)
    content = iscc_core.Code(units(result.iscc)["CONTENT"][5:])
    assert content.subtype == iscc_core.ST_CC.IMAGE
    assert file.tell() == 0


def test_image_code_follows_the_iscc_normalization() -> None:
    image = picture()
    expected_pixels = list(image.convert("L").resize((32, 32), Image.Resampling.BICUBIC).tobytes())
    file = png(image)

    result = fingerprint_file(file=file, kind="image")

    assert result.iscc == reference_iscc(iscc_core.gen_image_code(expected_pixels)["iscc"], file.getvalue())


def content_code(image: Image.Image, **save_options: object) -> str:
    result = fingerprint_file(file=png(image, **save_options), kind="image")
    return units(result.iscc or "")["CONTENT"]


def test_uniform_border_is_trimmed_before_hashing() -> None:
    inner = picture()
    framed = Image.new("RGB", (inner.width + 40, inner.height + 30), (255, 255, 255))
    framed.paste(inner, (20, 15))

    assert content_code(framed) == content_code(inner)


def test_transparency_is_put_on_white() -> None:
    hole = (16, 12, 48, 36)
    with_hole = picture().convert("RGBA")
    with_hole.paste((0, 0, 0, 0), hole)
    on_white = picture()
    on_white.paste((255, 255, 255), hole)

    assert content_code(with_hole) == content_code(on_white)


def test_exif_orientation_is_applied() -> None:
    upright = picture()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; display turns it 90° clockwise
    stored = upright.transpose(Image.Transpose.ROTATE_90)

    assert content_code(stored, exif=exif) == content_code(upright)


def test_unreadable_image_is_refused() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO(b"\x89PNG\r\n\x1a\n but not really"), kind="image")

    assert caught.value.code == "unreadable_file"
    assert caught.value.field == "file"


def test_truncated_image_is_refused() -> None:
    data = png(picture((256, 256))).getvalue()

    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO(data[: len(data) // 2]), kind="image")

    assert caught.value.code == "unreadable_file"


# --- audio -----------------------------------------------------------------------------------------------------

needs_fpcalc = pytest.mark.skipif(fingerprints.fpcalc_path() is None, reason="fpcalc (libchromaprint-tools) missing")
RATE = 44100


def melody(seconds: float = 8.0, seed: int = 1) -> np.ndarray:
    """A few seconds of harmonic notes and a chirp: enough structure for Chromaprint."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    signal = 0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t)  # a rising chirp
    note_length = int(0.25 * RATE)
    for start in range(0, len(t), note_length):
        frequency = 220 * 2 ** (int(rng.integers(0, 12)) / 12)
        part = t[start : start + note_length] - t[start]
        signal[start : start + note_length] += sum(np.sin(2 * np.pi * frequency * h * part) / h for h in (1, 2, 3)) * (
            np.exp(-part * 4)
        )
    return np.asarray(signal / np.abs(signal).max() * 0.8)


def wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def audio_content(data: bytes) -> int:
    result = fingerprint_file(file=io.BytesIO(data), kind="audio")
    assert result.audio_code_missing is None
    return int.from_bytes(iscc_core.iscc_decode(units(result.iscc or "")["CONTENT"])[4], "big")


@needs_fpcalc
def test_audio_gets_an_iscc_code_with_an_audio_content_code_from_chromaprint(tmp_path) -> None:
    data = wav(melody())
    (tmp_path / "melody.wav").write_bytes(data)
    done = subprocess.run(
        ["fpcalc", "-raw", "-json", "-signed", "-length", "120", str(tmp_path / "melody.wav")],
        capture_output=True,
        check=False,
    )
    features = json.loads(done.stdout)["fingerprint"]

    result = fingerprint_file(file=io.BytesIO(data), kind="audio")

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.audio_code_missing is None
    assert result.iscc == reference_iscc(iscc_core.gen_audio_code(features)["iscc"], data)
    content = iscc_core.Code(units(result.iscc)["CONTENT"][5:])
    assert content.subtype == iscc_core.ST_CC.AUDIO


@needs_fpcalc
def test_resampled_quieter_or_noisy_copies_have_nearby_audio_codes() -> None:
    original = melody()
    rng = np.random.default_rng(7)
    resampled = np.interp(np.linspace(0, len(original) - 1, len(original) // 2), np.arange(len(original)), original)
    copies = {
        "resampled to 22.05 kHz": wav(resampled, RATE // 2),
        "6 dB quieter": wav(original * 0.5),
        "small noise": wav(original + rng.normal(scale=0.01, size=len(original))),
    }
    code = audio_content(wav(original))
    other = audio_content(wav(melody(seed=99)))

    distances = {name: (code ^ audio_content(data)).bit_count() for name, data in copies.items()}

    # bench/iscc_transformations.py: such copies stay within a few bits of the original.
    assert all(distance <= 6 for distance in distances.values()), distances
    assert (code ^ other).bit_count() > max(distances.values())


@needs_fpcalc
def test_unreadable_audio_is_refused() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        fingerprint_file(file=io.BytesIO(b"ID3\x03\x00 not really audio"), kind="audio")

    assert caught.value.code == "unreadable_file"
    assert caught.value.field == "file"


def test_audio_without_fpcalc_gets_data_and_instance_codes_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "fpcalc_path", lambda: None)
    data = wav(melody(seconds=2))

    result = fingerprint_file(file=io.BytesIO(data), kind="audio")

    assert result == Fingerprints(
        sha256=hashlib.sha256(data).hexdigest(),
        iscc=reference_iscc(None, data),
        audio_code_missing=fingerprints.AUDIO_FPCALC_MISSING,
    )


def test_fpcalc_runs_with_a_duration_cap_and_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], float]] = []

    def too_slow(command: list[str], **options: object) -> None:
        calls.append((command, float(options["timeout"])))  # type: ignore[arg-type]
        raise subprocess.TimeoutExpired(command, 1.0)

    monkeypatch.setattr(fingerprints, "fpcalc_path", lambda: "/usr/bin/fpcalc")
    monkeypatch.setattr(subprocess, "run", too_slow)

    result = fingerprint_file(file=io.BytesIO(b"RIFF"), kind="audio", audio_max_seconds=30, audio_timeout=5.0)

    assert result.audio_code_missing == fingerprints.AUDIO_FPCALC_TIMEOUT
    ((command, timeout),) = calls
    assert command[:6] == ["/usr/bin/fpcalc", "-raw", "-json", "-signed", "-length", "30"]
    assert timeout == 5.0


@needs_fpcalc
def test_audio_is_read_in_chunks_and_progress_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprints, "_CHUNK_SIZE", 64 * 1024)
    data = wav(melody(seconds=3))
    file = ChunkedReader(data)
    seen: list[int] = []

    result = fingerprint_file(file=file, kind="audio", on_progress=seen.append)

    assert result.audio_code_missing is None
    assert file.largest_read == 64 * 1024
    assert seen == sorted(seen)
    assert seen[-1] == len(data)


# --- other kinds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["video", "software", "dataset", "other"])
def test_other_kinds_get_only_a_sha256(kind: str) -> None:
    data = b"ID3\x03\x00 not really audio, but bytes are bytes"

    result = fingerprint_file(file=io.BytesIO(data), kind=kind)

    assert result == Fingerprints(sha256=hashlib.sha256(data).hexdigest(), iscc=None)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="podcast"):
        fingerprint_file(file=io.BytesIO(b""), kind="podcast")
