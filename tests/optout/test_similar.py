"""Near copies: an ISCC is matched to registered works by Content-Code distance, in lookups and manifests."""

from __future__ import annotations

import io
import random
from datetime import timedelta
from typing import Any

import iscc_core
import pytest
from django.utils import timezone

from core.actors import Actor
from registry.models import Identifier
from registry.services import similarity_threshold_set
from registry.similarity import (
    DEFAULT_THRESHOLDS,
    ContentUnit,
    similar_search,
    similarity_index_build,
    similarity_index_forget,
)
from tests.factories import WorkFactory
from tests.optout.helpers import flip, image_iscc, refuse

pytestmark = pytest.mark.django_db

IMAGE_THRESHOLD = DEFAULT_THRESHOLDS["image"]


@pytest.fixture(autouse=True)
def _own_index(settings: Any, tmp_path: Any) -> Any:
    settings.SIMILARITY_INDEX_DIR = tmp_path / "similarity"
    similarity_index_forget()
    yield
    similarity_index_forget()


def lookup(client: Any, items: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    response = client.post("/api/v1/lookup", {"items": items, **extra}, format="json")
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


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


def test_thresholds_are_public_to_read_and_staff_set_through_the_api(api, holder_api, staff_api):
    listed = api.get("/api/v1/similarity-thresholds")
    assert listed.status_code == 200
    image = next(row for row in listed.json()["thresholds"] if row["modality"] == "image")
    assert (image["max_distance"], image["source"], image["scheduled"]) == (IMAGE_THRESHOLD, "default", [])

    later = (timezone.now() + timedelta(days=7)).isoformat()
    refused = holder_api.post("/api/v1/similarity-thresholds", {"modality": "image", "max_distance": 5}, format="json")
    assert refused.status_code == 403
    too_wide = staff_api.post("/api/v1/similarity-thresholds", {"modality": "image", "max_distance": 40}, format="json")
    assert too_wide.status_code == 400
    assert too_wide.json()["error"]["field"] == "max_distance"
    created = staff_api.post(
        "/api/v1/similarity-thresholds",
        {"modality": "image", "max_distance": 6, "effective_from": later, "reason": "crops of 5% matched too little"},
        format="json",
    )
    assert created.status_code == 201, created.content
    image = next(row for row in created.json()["thresholds"] if row["modality"] == "image")
    assert image["max_distance"] == IMAGE_THRESHOLD
    assert [s["max_distance"] for s in image["scheduled"]] == [6]
    again = staff_api.post(
        "/api/v1/similarity-thresholds",
        {"modality": "image", "max_distance": 7, "effective_from": later},
        format="json",
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "threshold_instant_taken"
