"""Near copies: an ISCC is matched to registered works by Content-Code distance, in lookups and manifests."""

from __future__ import annotations

import io
import random
from datetime import timedelta
from typing import Any

import iscc_core
import pytest
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFilter

from compensation.models import ManifestLine
from core.actors import Actor
from registry.fingerprints import fingerprint_file
from registry.models import Identifier
from registry.services import similarity_threshold_set
from registry.similarity import (
    DEFAULT_THRESHOLDS,
    ContentUnit,
    content_unit_of,
    similar_search,
    similarity_index_build,
    similarity_index_forget,
)
from tests.compensation.conftest import tariffs  # noqa: F401 (a fixture the manifest tests use)
from tests.compensation.helpers import manifest_body
from tests.factories import WorkFactory
from tests.optout.helpers import refuse

pytestmark = pytest.mark.django_db

IMAGE_THRESHOLD = DEFAULT_THRESHOLDS["image"]


@pytest.fixture(autouse=True)
def _own_index(settings: Any, tmp_path: Any) -> Any:
    settings.SIMILARITY_INDEX_DIR = tmp_path / "similarity"
    similarity_index_forget()
    yield
    similarity_index_forget()


def image_iscc(bits: int, modality: Any = iscc_core.ST_CC.IMAGE) -> str:
    """A Content-Code unit of ``modality`` whose 64 bits are ``bits``."""
    return "ISCC:" + iscc_core.encode_component(
        iscc_core.MT.CONTENT, modality, iscc_core.VS.V0, 64, bits.to_bytes(8, "big")
    )


def flip(bits: int, count: int, *, seed: int = 7) -> int:
    """``bits`` with ``count`` distinct bits flipped."""
    for position in random.Random(seed).sample(range(64), count):
        bits ^= 1 << position
    return bits


def lookup(client: Any, items: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    response = client.post("/api/v1/lookup", {"items": items, **extra}, format="json")
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


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


def test_every_distance_up_to_the_threshold_matches_and_none_beyond(holder, lab_api):
    registered = 0x0123_4567_89AB_CDEF
    work = WorkFactory(holder=holder, kind="image", identifiers=[("iscc", image_iscc(registered))])
    distances = range(IMAGE_THRESHOLD + 3)

    results = lookup(lab_api, [{"scheme": "iscc", "value": image_iscc(flip(registered, d))} for d in distances])

    for distance, result in zip(distances, results, strict=True):
        if distance == 0:
            assert (result["match"], result["distance"]) == ("exact", 0)
        elif distance <= IMAGE_THRESHOLD:
            assert (result["match"], result["distance"]) == ("similar", distance), distance
            assert result["work"]["id"] == work.pk
            assert result["status"] == "permitted"
            assert result["candidates"] == [
                {
                    "work": {"id": work.pk, "title": work.title, "kind": "image"},
                    "match": "similar",
                    "distance": distance,
                    "status": "permitted",
                    "refusal": None,
                }
            ]
        else:
            assert result["status"] == "unregistered", distance
            assert (result["match"], result["distance"], result["candidates"]) == (None, None, [])


def test_a_similar_distance_zero_is_a_content_code_equal_without_the_identifier(holder, lab_api):
    """The registered ISCC-CODE and a lab's bare Content-Code share the content bits: similar, distance 0."""
    content = image_iscc(0xFEDC_BA98_7654_3210)
    data = iscc_core.gen_data_code(io.BytesIO(b"picture bytes"))["iscc"]
    instance = iscc_core.gen_instance_code(io.BytesIO(b"picture bytes"))["iscc"]
    full = iscc_core.gen_iscc_code([content, data, instance])["iscc"]
    work = WorkFactory(holder=holder, kind="image", identifiers=[("iscc", full)])

    (result,) = lookup(lab_api, [{"scheme": "iscc", "value": content}])

    assert (result["match"], result["distance"], result["work"]["id"]) == ("similar", 0, work.pk)


def test_other_modalities_never_match(holder, lab_api):
    bits = 0x0F0F_0F0F_0F0F_0F0F
    WorkFactory(holder=holder, kind="text", identifiers=[("iscc", image_iscc(bits, iscc_core.ST_CC.TEXT))])

    (result,) = lookup(lab_api, [{"scheme": "iscc", "value": image_iscc(flip(bits, 1))}])

    assert result["status"] == "unregistered"


def test_a_refusing_work_within_the_threshold_refuses_the_item_even_past_a_nearer_permitted_one(
    holder, holder_api, other_holder, staff, lab_api
):
    asked = 0x5555_AAAA_5555_AAAA
    nearer = WorkFactory(holder=other_holder, kind="image", identifiers=[("iscc", image_iscc(flip(asked, 1)))])
    refused = WorkFactory(
        holder=holder, kind="image", identifiers=[("iscc", image_iscc(flip(asked, 5, seed=9)))], verified_by=staff
    )
    refusal = refuse(holder_api, scope="work", work=refused.pk)

    (result,) = lookup(lab_api, [{"scheme": "iscc", "value": image_iscc(asked)}])

    assert result["status"] == "refused"
    assert result["may_train"] is False
    assert (result["match"], result["distance"]) == ("similar", 5)
    assert result["work"]["id"] == refused.pk
    assert result["refusal"]["id"] == refusal["id"]
    assert [(c["work"]["id"], c["distance"], c["status"]) for c in result["candidates"]] == [
        (nearer.pk, 1, "permitted"),
        (refused.pk, 5, "refused"),
    ]
    # The receipt signs the results, candidates included.
    response = lab_api.post(
        "/api/v1/lookup", {"items": [{"scheme": "iscc", "value": image_iscc(asked)}]}, format="json"
    ).json()
    verified = lab_api.post("/api/v1/receipts/verify", response, format="json")
    assert verified.status_code == 200, verified.content
    assert verified.json()["valid"] is True


def test_thresholds_are_staff_set_per_modality_and_effective_dated(holder, lab_api, staff):
    registered = 0x1111_2222_3333_4444
    WorkFactory(holder=holder, kind="image", identifiers=[("iscc", image_iscc(registered))])
    item = [{"scheme": "iscc", "value": image_iscc(flip(registered, 3))}]
    before = timezone.now()

    similarity_threshold_set(actor=Actor(user=staff), modality="image", max_distance=2)

    assert lookup(lab_api, item)[0]["status"] == "unregistered"
    # As of an instant before the change, the default was in force.
    assert lookup(lab_api, item, as_of=before.isoformat())[0]["match"] == "similar"
    # A text threshold changes nothing for images.
    similarity_threshold_set(actor=Actor(user=staff), modality="text", max_distance=16)
    assert lookup(lab_api, item)[0]["status"] == "unregistered"


def test_the_base_on_disk_and_the_delta_answer_alike_and_removed_identifiers_drop_out(holder, lab_api):
    codes = [random.Random(n).getrandbits(64) for n in range(50)]
    works = [WorkFactory(holder=holder, kind="image", identifiers=[("iscc", image_iscc(c))]) for c in codes[:40]]
    assert similarity_index_build()["size"] == 40
    later = [WorkFactory(holder=holder, kind="image", identifiers=[("iscc", image_iscc(c))]) for c in codes[40:]]
    similarity_index_forget()

    units = [ContentUnit(modality="image", code=_signed(flip(c, 4, seed=n))) for n, c in enumerate(codes)]
    hits = similar_search(units=units, thresholds=[IMAGE_THRESHOLD] * len(units))
    assert [[h.work_id for h in found] for found in hits] == [[w.pk] for w in works + later]
    assert all(found[0].distance == 4 for found in hits)

    Identifier.objects.filter(work=works[0]).delete()
    (result,) = lookup(lab_api, [{"scheme": "iscc", "value": image_iscc(flip(codes[0], 4, seed=0))}])
    assert result["status"] == "unregistered"


def _signed(bits: int) -> int:
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def test_a_refused_photo_is_found_through_a_resized_reencoded_copy_by_lookup_and_by_manifest(
    holder, holder_api, staff, lab, lab_api, tariffs, django_capture_on_commit_callbacks
):
    original = photo()
    registered = fingerprint_file(file=encoded(original, "PNG"), kind="image")
    assert registered.iscc is not None
    work = WorkFactory(holder=holder, kind="image", identifiers=[("iscc", registered.iscc)], verified_by=staff)
    refusal = refuse(holder_api, scope="work", work=work.pk)
    copy = Image.open(encoded(original.resize((320, 240)), "JPEG", quality=60))
    scraped = fingerprint_file(file=encoded(copy, "JPEG", quality=60), kind="image")
    assert scraped.iscc is not None and scraped.iscc != registered.iscc
    unit, registered_unit = content_unit_of(scraped.iscc), content_unit_of(registered.iscc)
    assert unit is not None and registered_unit is not None
    distance = (unit.code ^ registered_unit.code).bit_count()

    (result,) = lookup(lab_api, [{"scheme": "iscc", "value": scraped.iscc}])

    assert result["status"] == "refused"
    assert (result["match"], result["distance"]) == ("similar", distance)
    assert result["refusal"]["id"] == refusal["id"]

    used_at = (timezone.now() + timedelta(seconds=1)).isoformat()
    lines = [{"scheme": "iscc", "value": scraped.iscc, "units": 1, "unit": "item", "used_at": used_at}]
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post("/api/v1/usage-manifests", manifest_body(lines), format="json")
    assert response.status_code == 202, response.content
    (row,) = ManifestLine.objects.all()
    assert row.outcome == "refused_at_use"
    assert (row.match, row.distance, row.work_id, row.refusal_id) == ("similar", distance, work.pk, refusal["id"])
    assert row.value == scraped.iscc


def test_a_near_copy_in_a_manifest_pays_the_matched_works_owners(
    holder, staff, lab, lab_api, tariffs, django_capture_on_commit_callbacks
):
    registered = 0x7777_0000_FFFF_1234
    work = WorkFactory(
        holder=holder,
        kind="text",
        identifiers=[("iscc", image_iscc(registered, iscc_core.ST_CC.TEXT))],
        verified_by=staff,
    )
    near = image_iscc(flip(registered, 2), iscc_core.ST_CC.TEXT)
    far = image_iscc(flip(registered, DEFAULT_THRESHOLDS["text"] + 1), iscc_core.ST_CC.TEXT)
    lines = [
        {"scheme": "iscc", "value": value, "units": 1000, "unit": "token", "used_at": timezone.now().isoformat()}
        for value in (near, far)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post("/api/v1/usage-manifests", manifest_body(lines), format="json")
    assert response.status_code == 202, response.content
    rows = {r.line_no: r for r in ManifestLine.objects.all()}
    assert (rows[1].outcome, rows[1].match, rows[1].distance, rows[1].work_id) == ("matched", "similar", 2, work.pk)
    assert rows[1].paid_micro == rows[1].amount_micro and rows[1].paid_micro > 0
    # Beyond the threshold it is an unregistered ISCC, priced as any (no tariff for "other" works per token here).
    assert (rows[2].outcome, rows[2].match, rows[2].distance, rows[2].work_id) == ("unpriced", "", None, None)
