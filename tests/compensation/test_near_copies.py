"""Usage manifests with ISCC lines: matched by near copies by the lookup's rule, on both usage engines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import iscc_core
import pytest
from django.utils import timezone
from PIL import Image

from compensation.models import ManifestLine
from registry.fingerprints import fingerprint_file
from registry.similarity import DEFAULT_THRESHOLDS, content_unit_of, similarity_index_forget
from tests.compensation.helpers import manifest_body
from tests.factories import WorkFactory
from tests.optout.helpers import encoded, flip, image_iscc, photo, refuse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_index(settings: Any, tmp_path: Any) -> Any:
    settings.SIMILARITY_INDEX_DIR = tmp_path / "similarity"
    similarity_index_forget()
    yield
    similarity_index_forget()


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
    assert scraped.iscc is not None
    assert scraped.iscc != registered.iscc
    unit, registered_unit = content_unit_of(scraped.iscc), content_unit_of(registered.iscc)
    assert unit is not None
    assert registered_unit is not None
    distance = (unit.code ^ registered_unit.code).bit_count()

    response = lab_api.post("/api/v1/lookup", {"items": [{"scheme": "iscc", "value": scraped.iscc}]}, format="json")
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]

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
    assert rows[1].paid_micro == rows[1].amount_micro
    assert rows[1].paid_micro > 0
    # Beyond the threshold it is an unregistered ISCC, priced as any (no tariff for "other" works per token here).
    assert (rows[2].outcome, rows[2].match, rows[2].distance, rows[2].work_id) == ("unpriced", "", None, None)
