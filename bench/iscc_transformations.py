"""How far the ISCC Content-Code moves under common transformations, against how close unrelated works come.

Run from the project root (no database needed; audio needs ``fpcalc``, Debian ``libchromaprint-tools``)::

    .venv/bin/python bench/iscc_transformations.py [--images 40] [--audio 24] [--seed 1]

For each modality (image, text, audio) it computes the 64-bit Content-Code of each input as the registry does
(``registry/fingerprints.py``: the same image preparation, ``gen_text_code`` on the decoded text, Chromaprint
features from ``fpcalc -raw -signed``), applies each transformation, and prints the Hamming distance between the
original's and the copy's code (min / median / max over the inputs). Then the distances between every pair of
distinct inputs (the false-match side: min, 0.1%, 1% and 5% quantiles), and a suggested threshold: the largest
distance that covers the common transformations' medians while staying well below the unrelated pairs' 0.1%
quantile. See bench/README.md for the inputs used and the figures.
"""

from __future__ import annotations

import argparse
import ast
import io
import math
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import unicodedata
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import iscc_core
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.fingerprints import audio_features, image_pixels  # noqa: E402

# Photos and drawings that happen to be on a Debian build machine; missing ones are skipped.
IMAGE_GLOBS = [
    "/root/.rustup/toolchains/stable-*/share/doc/rust/html/embedded-book/assets/*.jp*g",
    "/root/.rustup/toolchains/stable-*/share/doc/rust/html/book/img/trpl14-0*.png",
    "/root/.rustup/toolchains/stable-*/share/doc/rust/html/rustc/images/*.png",
    "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_web_mqtt_examples-*/priv/bunny.png",
    "/usr/lib/google-cloud-sdk/platform/google_appengine/google/appengine/tools/java/jetty12/jetty-home/modules/demo.d/root/images/jetty-pic.png",
    "/root/.pyenv/terminal_output.png",
    "/usr/share/doc/nodejs/contributing/doc_img/*.png",
    "/usr/share/doc/valgrind/html/images/*.png",
    "/usr/share/icons/Adwaita/512x512/devices/*.png",
]
TEXT_GLOBS = [
    "/usr/share/common-licenses/*",
    "/usr/share/vim/vim90/doc/*.txt",
]
KOREAN_GLOBS = [
    "/usr/lib/google-cloud-sdk/platform/gsutil/third_party/charset_normalizer/data/sample-korean.txt",
]
# Korean prose written for this benchmark (a short essay on the registry), so at least one long Korean text exists.
KOREAN_ESSAY = """\
인공지능 학습과 저작권: 선사용·후보상 제도에 관한 짧은 글

인공지능 모델은 방대한 양의 글과 그림과 소리를 읽으며 배운다. 지금까지 그 재료가 된 작품의 저작자는 자기 작품이
어디에 쓰였는지 알 길이 없었고, 쓰인 만큼의 대가를 받을 방법도 없었다. 정부가 발표한 인공지능 행동계획은 이 문제를
두 갈래로 풀려고 한다. 저작자는 자기 작품이 인공지능 학습에 쓰이는 것을 거부할 권리를 가지며, 명시적으로 거부하지
않은 작품은 먼저 쓰고 나중에 보상하는 방식, 곧 선사용·후보상의 대상이 된다.

이 제도가 제대로 움직이려면 세 가지가 필요하다. 첫째, 누구나 자기 작품을 등록하고 거부 의사를 남길 수 있는 등록부가
있어야 한다. 둘째, 인공지능을 만드는 기업은 학습 전에 등록부에 물어보고, 거부된 작품을 학습 자료에서 빼야 한다.
셋째, 학습에 쓰인 작품의 목록을 보고하면, 등록부는 요율에 따라 대가를 계산하여 권리자에게 나누어 준다. 권리자를
아직 찾지 못한 작품의 몫은 일정 기간 보관했다가, 권리자가 나타나면 그에게 지급한다.

작품을 찾는 열쇠는 식별자다. 책에는 국제표준도서번호가 있고, 음반에는 국제표준녹음코드가 있으며, 논문에는 디지털
객체 식별자가 있다. 그러나 인터넷에 올라온 글이나 사진처럼 번호가 없는 작품이 훨씬 많다. 그런 작품은 파일의 내용에서
식별자를 만든다. 파일의 해시는 한 바이트만 달라도 완전히 바뀌므로 똑같은 사본만 찾아낸다. 반면 국제표준콘텐츠코드는
비슷한 내용에 비슷한 코드를 주기 때문에, 크기를 줄이거나 다시 압축한 사진, 줄바꿈을 바꾼 글, 음량을 바꾼 음원도
원본과 가까운 코드를 얻는다. 두 코드가 얼마나 다른지는 서로 다른 비트의 개수, 곧 해밍 거리로 잰다.

문제는 어디까지를 같은 작품으로 볼 것인가이다. 기준을 너무 느슨하게 잡으면 서로 상관없는 작품이 같은 작품으로
묶이고, 거부하지 않은 작품이 거부된 것으로 잘못 처리되거나 엉뚱한 사람에게 보상이 돌아간다. 기준을 너무 엄격하게
잡으면 흔한 변형만으로도 작품을 놓친다. 그래서 우리는 실제 변형을 가한 사본과 원본 사이의 거리를 재고, 서로 관계없는
작품 사이의 거리와 비교하여, 두 분포 사이에 넉넉한 여유를 남기는 값을 기본값으로 삼는다.

이 글 자체도 측정의 재료가 된다. 줄을 다시 나누고, 머리말과 꼬리말을 바꾸고, 몇 낱말의 오타를 고치고, 끝에 다른
글을 덧붙인 사본을 만들어 원본과 비교한다. 한국어 글은 띄어쓰기와 조사가 영어와 다르게 움직이므로, 영어 글에서 얻은
기준이 한국어에도 맞는지 따로 확인할 필요가 있다. 등록부는 결국 사람이 만든 작품을 존중하기 위한 도구이며, 그 도구의
정확성은 이런 작은 측정에서 시작된다.
"""
WATERMARK = "© 2026 Example Photo Agency"


def content_bits(code: str) -> int:
    """The 64 bits of a Content-Code ('ISCC:...') as an integer."""
    digest = iscc_core.iscc_decode(code)[4]
    return int.from_bytes(digest[:8], "big")


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# Images -------------------------------------------------------------------------------------------------------


def image_code(image: Image.Image, fmt: str = "PNG", quality: int = 95) -> int:
    """The Image-Code of an image after saving it as the given format, as the registry reads an uploaded file."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, fmt)
    buffer.seek(0)
    return content_bits(iscc_core.gen_image_code(image_pixels(buffer))["iscc"])


def natural_image(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like picture: a smooth multi-scale noise field in colour, a horizon gradient and a few soft shapes."""
    width, height = size
    field = np.zeros((height, width, 3))
    for scale in (4, 8, 16, 32, 64):
        coarse = rng.normal(size=(height // scale + 2, width // scale + 2, 3))
        layer = np.asarray(
            Image.fromarray(((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8)).resize(
                (width + 2 * scale, height + 2 * scale), Image.Resampling.BICUBIC
            ),
            dtype=float,
        )[:height, :width]
        field += layer * (scale / 64)
    field = (field - field.min()) / np.ptp(field)
    horizon = rng.uniform(0.3, 0.7)
    gradient = np.clip((np.arange(height)[:, None] / height - horizon) * 3, -1, 1)[:, :, None]
    sky, ground = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    base = np.where(gradient < 0, sky, ground) * (0.6 + 0.4 * np.abs(gradient))
    pixels = np.clip(0.55 * base + 0.45 * field, 0, 1) * 255
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(15, 120))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    return image


def crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def watermark(image: Image.Image) -> Image.Image:
    marked = image.convert("RGBA")
    overlay = Image.new("RGBA", marked.size, (0, 0, 0, 0))
    font = ImageFont.load_default(size=max(12, marked.height // 18))
    draw = ImageDraw.Draw(overlay)
    box = draw.textbbox((0, 0), WATERMARK, font=font)
    x = marked.width - (box[2] - box[0]) - marked.width // 40
    y = marked.height - (box[3] - box[1]) - marked.height // 20
    draw.text((x, y), WATERMARK, font=font, fill=(255, 255, 255, 160))
    return Image.alpha_composite(marked, overlay).convert("RGB")


IMAGE_TRANSFORMATIONS: dict[str, Callable[[Image.Image], int]] = {
    "resize 50%": lambda im: image_code(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)),
    "resize 25%": lambda im: image_code(im.resize((im.width // 4, im.height // 4), Image.Resampling.LANCZOS)),
    "JPEG q90": lambda im: image_code(im, "JPEG", 90),
    "JPEG q75": lambda im: image_code(im, "JPEG", 75),
    "JPEG q50": lambda im: image_code(im, "JPEG", 50),
    "PNG -> JPEG q85": lambda im: image_code(im, "JPEG", 85),
    "crop 2% per side": lambda im: image_code(crop(im, 0.02)),
    "crop 5% per side": lambda im: image_code(crop(im, 0.05)),
    "brightness +10%": lambda im: image_code(ImageEnhance.Brightness(im.convert("RGB")).enhance(1.1)),
    "watermark text": lambda im: image_code(watermark(im)),
    "grayscale": lambda im: image_code(im.convert("L")),
}


def image_inputs(count: int, rng: np.random.Generator) -> tuple[list[tuple[str, Image.Image]], int]:
    found: list[tuple[str, Image.Image]] = []
    seen: set[str] = set()
    for pattern in IMAGE_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            if path.name in seen or path.stat().st_size < 20_000:
                continue
            seen.add(path.name)
            with Image.open(path) as opened:
                image = opened.convert("RGBA") if "A" in opened.getbands() else opened.convert("RGB")
            if image.mode == "RGBA":
                background = Image.new("RGB", image.size, (255, 255, 255))
                background.paste(image, mask=image.getchannel("A"))
                image = background
            found.append((str(path), image))
    files = len(found)
    for index in range(max(0, count - files)):
        found.append((f"generated-{index}", natural_image(rng)))
    return found, files


# Texts --------------------------------------------------------------------------------------------------------


def text_code(text: str) -> int:
    return content_bits(iscc_core.gen_text_code(text)["iscc"])


def rewrap(text: str) -> str:
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(textwrap.fill(p, width=58) for p in paragraphs if p)


def header_footer(text: str) -> str:
    lines = text.splitlines()
    body = lines[2:-2] if len(lines) > 8 else lines
    return "\n".join(["Downloaded from example.org/library — page 1", "", *body, "", "Printed 2026-12-05 · p. 1/1"])


def normalization(text: str) -> str:
    changed = unicodedata.normalize("NFD", text).replace("\n", "\r\n").replace("  ", " ")
    return changed.replace('"', "\u201c").replace("'", "\u2019").replace(". ", ".  ")


def typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    for index in rng.sample(candidates, min(5, len(candidates))):
        word = words[index]
        at = rng.randrange(1, len(word) - 1)
        words[index] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return " ".join(words)


def appended(text: str, other: str, fraction: float) -> str:
    wanted = int(len(text) * fraction)
    extra = (other * (wanted // max(1, len(other)) + 1))[:wanted]
    return text + "\n\n" + extra


def po_translations(path: Path) -> str:
    """The translations (msgstr) of a gettext catalogue, one per line: the project's Korean text."""
    found: list[str] = []
    current: list[str] | None = None
    for line in path.read_text("utf-8").splitlines():
        if line.startswith("msgstr"):
            current = [line.partition(" ")[2]]
            found.append("")
        elif line.startswith('"') and current is not None:
            current.append(line)
        else:
            current = None
        if current is not None:
            found[-1] = "".join(ast.literal_eval(part) for part in current)
    return "\n".join(text for text in found if text and "Project-Id-Version" not in text)


def text_inputs(limit_bytes: int) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for pattern in TEXT_GLOBS + KOREAN_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            # /usr/share/common-licenses/GPL is a link to GPL-3: one text, not an unrelated pair at distance 0.
            if not path.is_file() or path.resolve() in seen or path.stat().st_size < 300:
                continue
            seen.add(path.resolve())
            try:
                texts.append((str(path), path.read_text("utf-8")[:limit_bytes]))
            except UnicodeDecodeError:
                continue
    for po in sorted(ROOT.glob("*/locale/ko/LC_MESSAGES/django.po")):
        texts.append((f"{po.parts[-5]} Korean messages", po_translations(po)[:limit_bytes]))
    texts.append(("Korean essay (bench)", KOREAN_ESSAY))
    return texts


# Audio --------------------------------------------------------------------------------------------------------

RATE = 44100


def music(rng: np.random.Generator, seconds: float = 20.0) -> np.ndarray:
    """A synthetic piece: a random melody of harmonic notes with envelopes over a bass line and noise percussion."""
    seconds = float(rng.uniform(seconds * 0.75, seconds * 1.5))
    total = int(seconds * RATE)
    signal = np.zeros(total)
    tempo = rng.uniform(0.12, 0.6)
    root = rng.uniform(80, 440)
    scales = [np.array([0, 2, 4, 5, 7, 9, 11, 12]), np.array([0, 2, 3, 5, 7, 8, 10, 12]), np.arange(13)]
    scale = scales[int(rng.integers(0, len(scales)))]
    harmonics = int(rng.integers(1, 12))
    slope = rng.uniform(0.5, 2.5)
    voices = int(rng.integers(1, 4))  # notes sounding together (chords)
    at = 0
    while at < total:
        length = int(tempo * RATE * rng.choice([1, 1, 2, 0.5, 4]))
        t = np.arange(min(length, total - at)) / RATE
        envelope = np.exp(-t * rng.uniform(0.5, 8)) * np.minimum(1, t * rng.uniform(20, 400))
        for _ in range(voices):
            frequency = root * 2 ** (scale[rng.integers(0, len(scale))] / 12) * rng.choice([0.5, 1, 2])
            note = sum(np.sin(2 * np.pi * frequency * h * t) / h**slope for h in range(1, harmonics + 1))
            signal[at : at + len(t)] += 0.5 * note * envelope
        at += length
    t = np.arange(total) / RATE
    bass = np.sin(2 * np.pi * root / 2 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t / (tempo * 8)))
    drums = np.zeros(total)
    if rng.random() < 0.6:
        beat = int(tempo * rng.choice([1, 2, 4]) * RATE)
        decay = rng.uniform(100, 2000)
        for start in range(0, total, beat):
            hit = rng.normal(size=min(6000, total - start)) * np.exp(-np.arange(min(6000, total - start)) / decay)
            drums[start : start + len(hit)] += hit * 0.3
    mix = signal + rng.uniform(0, 0.5) * bass + drums
    return np.asarray(mix / np.abs(mix).max() * 0.8)


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    count = int(len(samples) * rate / RATE)
    return np.asarray(np.interp(np.linspace(0, len(samples) - 1, count), np.arange(len(samples)), samples))


class AudioCoder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, samples: np.ndarray, rate: int = RATE) -> int:
        path = self.directory / "clip.wav"
        path.write_bytes(wav_bytes(samples, rate))
        features = audio_features(path)
        return content_bits(iscc_core.gen_audio_code(features)["iscc"])


def audio_transformations(rng: np.random.Generator) -> dict[str, Callable[[np.ndarray], tuple[np.ndarray, int]]]:
    def noise(s: np.ndarray, snr_db: float) -> tuple[np.ndarray, int]:
        power = float(np.mean(s**2))
        return s + rng.normal(scale=math.sqrt(power / 10 ** (snr_db / 10)), size=len(s)), RATE

    return {
        "resample 44.1 -> 22.05 kHz": lambda s: (resample(s, 22050), 22050),
        "resample 44.1 -> 48 kHz": lambda s: (resample(s, 48000), 48000),
        "volume -6 dB": lambda s: (s * 0.5, RATE),
        "volume +3 dB (clipped)": lambda s: (np.clip(s * 1.41, -1, 1), RATE),
        "noise SNR 30 dB": lambda s: noise(s, 30),
        "noise SNR 20 dB": lambda s: noise(s, 20),
        "trim 1 s at start": lambda s: (s[RATE:], RATE),
    }


# Report -------------------------------------------------------------------------------------------------------


def quantile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Inputs found on the machine that are one work in two states: the same circuit board photographed for one book,
# the second with a part highlighted (a derivative, Content-Codes 10 apart).
RELATED_FILES = {"f3.jpg": "stm32f3-board", "verify.jpeg": "stm32f3-board"}


def family(name: str) -> str:
    if Path(name).name in RELATED_FILES:
        return RELATED_FILES[Path(name).name]
    if "common-licenses" not in name:
        return name
    return Path(name).name.split("-")[0].rstrip("0123456789.")


def random_tail(threshold: int, bits: int = 64) -> float:
    """P(distance <= threshold) between two codes of independent uniform bits: the floor real content stays above."""
    return float(sum(math.comb(bits, k) for k in range(threshold + 1)) / 2**bits)


def covered(results: dict[str, list[int]], threshold: int) -> float:
    everything = [d for distances in results.values() for d in distances]
    return sum(1 for d in everything if d <= threshold) / len(everything)


def report(modality: str, inputs: int, results: dict[str, list[int]], codes: list[int], names: Sequence[str]) -> None:
    print(f"\n== {modality}: {inputs} inputs ==")
    print(f"{'transformation':32} {'min':>4} {'median':>7} {'p90':>5} {'max':>4}")
    medians = []
    for name, distances in results.items():
        median = statistics.median(distances)
        medians.append(median)
        print(f"{name:32} {min(distances):4d} {median:7.1f} {quantile(distances, 0.9):5.1f} {max(distances):4d}")
    # Versions of one licence (LGPL-2 and LGPL-2.1, GFDL-1.2 and -1.3) are editions of one text, not unrelated.
    labelled = sorted(
        (distance(a, b), names[i], names[j])
        for i, a in enumerate(codes)
        for j, b in enumerate(codes)
        if i < j and family(names[i]) != family(names[j])
    )
    pairs = [d for d, _, _ in labelled]
    print("closest unrelated pairs:")
    for d, first, second in labelled[:5]:
        print(f"  {d:3d}  {first}  |  {second}")
    print(
        f"unrelated pairs ({len(pairs)}): min {min(pairs)}, 0.1% {quantile(pairs, 0.001):.1f}, "
        f"1% {quantile(pairs, 0.01):.1f}, 5% {quantile(pairs, 0.05):.1f}, median {statistics.median(pairs):.1f}"
    )
    # The threshold: cover the common transformations (their medians), leave at least 8 bits below the unrelated
    # pairs' 0.1% quantile, whichever is smaller.
    covering = max(medians)
    ceiling = quantile(pairs, 0.001) - 8
    suggested = int(min(max(covering, 0), ceiling))
    print(f"transformations' largest median {covering:.1f}; unrelated 0.1% quantile - 8 = {ceiling:.1f}")
    for threshold in (6, 8, 10, 12, 14):
        share = sum(1 for d in pairs if d <= threshold) / len(pairs)
        print(
            f"  at <= {threshold:2d}: unrelated pairs matched {share:.4%}, "
            f"transformed copies matched {covered(results, threshold):.1%} "
            f"(uniform random bits: {random_tail(threshold):.1e})"
        )
    print(f"suggested threshold ({modality}): {suggested}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120, help="image inputs (files found, then generated)")
    parser.add_argument("--audio", type=int, default=40, help="synthetic audio pieces")
    parser.add_argument("--text-bytes", type=int, default=100_000, help="characters read of each text")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["image", "text", "audio"])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    prng = random.Random(args.seed)  # noqa: S311 (which words get typos)

    if args.only in (None, "image"):
        images, files = image_inputs(args.images, rng)
        print(f"images: {files} files found on this machine, {len(images) - files} generated")
        originals = [image_code(image) for _, image in images]
        image_results = {
            name: [distance(code, transform(image)) for code, (_, image) in zip(originals, images, strict=True)]
            for name, transform in IMAGE_TRANSFORMATIONS.items()
        }
        report("image", len(images), image_results, originals, [name for name, _ in images])

    if args.only in (None, "text"):
        texts = text_inputs(args.text_bytes)
        print(f"\ntexts: {len(texts)} ({sum(len(t) for _, t in texts):,} characters)")
        codes = [text_code(text) for _, text in texts]
        # The transformations run on a spread of inputs: the licences, a few vim manuals, every Korean text.
        chosen = [i for i, (name, _) in enumerate(texts) if "common-licenses" in name or "Korean" in name]
        chosen += [i for i, (name, _) in enumerate(texts) if "vim" in name][::15]
        other = texts[0][1]
        text_transforms: dict[str, Callable[[str], str]] = {
            "re-wrap lines (58 columns)": rewrap,
            "header/footer lines changed": header_footer,
            "NFD, CRLF, curly quotes, spaces": normalization,
            "5 typos fixed": lambda t: typos(t, prng),
            "5% other text appended": lambda t: appended(t, other, 0.05),
            "20% other text appended": lambda t: appended(t, other, 0.20),
        }
        text_results = {
            name: [distance(codes[i], text_code(transform(texts[i][1]))) for i in chosen]
            for name, transform in text_transforms.items()
        }
        report("text", len(chosen), text_results, codes, [name for name, _ in texts])

    if args.only in (None, "audio"):
        if shutil.which("fpcalc") is None:
            print("\naudio: skipped, fpcalc is not installed (Debian: libchromaprint-tools)")
            return
        pieces = [music(rng) for _ in range(args.audio)]
        with tempfile.TemporaryDirectory() as directory:
            coder = AudioCoder(Path(directory))
            codes = [coder(piece) for piece in pieces]
            audio_results = {
                name: [distance(code, coder(*transform(piece))) for code, piece in zip(codes, pieces, strict=True)]
                for name, transform in audio_transformations(rng).items()
            }
        report("audio", len(pieces), audio_results, codes, [f"piece {i}" for i in range(len(pieces))])


if __name__ == "__main__":
    main()
