"""Musical works and their recordings: registration, and a refusal of the musical work refusing its recordings
(not the reverse), by the event path (as_of) and the status projection (now) alike."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from optout.status.selectors import lookup_batch_current
from registry.models import MusicalWorkContributor, Work
from tests.factories import WorkFactory, verify_claims

ISWC = "T-034.524.680-1"
ISRC = "KRA012600001"
OTHER_ISRC = "KRA012600002"


def _lookup(api: APIClient, *items: tuple[str, str], as_of: str | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"items": [{"scheme": s, "value": v} for s, v in items], "purpose": "train-ai"}
    if as_of:
        body["as_of"] = as_of
    response = api.post("/api/v1/lookup", body, format="json")
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


@pytest.fixture
def song(holder: Any, holder_api: APIClient, staff: Any) -> Work:
    """A musical work with two writers and a publisher, registered through the API and verified."""
    response = holder_api.post(
        "/api/v1/works",
        {
            "title": "아리랑 (Arirang)",
            "kind": "musical_work",
            "identifiers": [{"scheme": "iswc", "value": ISWC}],
            "contributors": [
                {"role": "writer", "designation": "C", "name": "KIM MINSU", "ipi": "00014107338", "share_bp": 3334},
                {"role": "writer", "designation": "A", "name": "LEE JIWON", "ipi": "14107339", "share_bp": 3333},
                {"role": "publisher", "designation": "E", "name": "HANGANG MUSIC", "share_bp": 3333},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [c["ipi"] for c in body["contributors"]] == ["00014107338", "00014107339", ""]
    work = Work.objects.get(pk=body["id"])
    verify_claims(work, staff)
    return work


def _recording(api: APIClient, song: Work, isrc: str) -> Work:
    response = api.post(
        "/api/v1/works",
        {
            "title": "Arirang (live)",
            "kind": "audio",
            "identifiers": [{"scheme": "isrc", "value": isrc}],
            "musical_work": song.pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["musical_work"] == song.pk
    return Work.objects.get(pk=response.json()["id"])


def test_musical_work_keeps_writers_and_publishers(song: Work) -> None:
    rows = list(MusicalWorkContributor.objects.filter(work=song).values_list("role", "designation", "name", "share_bp"))
    assert rows == [
        ("writer", "C", "KIM MINSU", 3334),
        ("writer", "A", "LEE JIWON", 3333),
        ("publisher", "E", "HANGANG MUSIC", 3333),
    ]


def test_only_recordings_name_a_musical_work(holder_api: APIClient, song: Work) -> None:
    response = holder_api.post(
        "/api/v1/works",
        {
            "title": "A book",
            "kind": "text",
            "identifiers": [{"scheme": "isbn", "value": "9788936434021"}],
            "musical_work": song.pk,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_a_recording"
    book = WorkFactory()
    response = holder_api.post(
        "/api/v1/works",
        {"title": "Rec", "kind": "audio", "identifiers": [{"scheme": "isrc", "value": ISRC}], "musical_work": book.pk},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_a_musical_work"


def test_contributor_shares_over_100_percent_are_refused(holder_api: APIClient) -> None:
    response = holder_api.post(
        "/api/v1/works",
        {
            "title": "Too much",
            "kind": "musical_work",
            "identifiers": [{"scheme": "iswc", "value": ISWC}],
            "contributors": [
                {"role": "writer", "name": "A", "share_bp": 6000},
                {"role": "publisher", "name": "B", "share_bp": 5000},
            ],
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "shares_over_100"
    assert not Work.objects.exists()


def test_refusing_the_musical_work_refuses_its_recordings(
    holder_api: APIClient, other_holder: Any, other_holder_api: APIClient, staff: Any, lab_api: APIClient, song: Work
) -> None:
    # The label owns the recording; the publisher (holder) owns the composition.
    recording = _recording(other_holder_api, song, ISRC)
    verify_claims(recording, staff)
    before = _lookup(lab_api, ("isrc", ISRC))[0]
    assert before["status"] == "permitted"

    refused = holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": song.pk, "purposes": ["train-ai"]}, format="json"
    )
    assert refused.status_code == 201

    now = _lookup(lab_api, ("isrc", ISRC), ("iswc", ISWC))
    assert [r["status"] for r in now] == ["refused", "refused"]
    assert now[0]["refusal"]["id"] == refused.json()["id"]
    assert now[0]["refusal"]["applies_to"] == "musical_work"
    assert now[0]["refusal"]["musical_work"] == {"id": song.pk, "title": "아리랑 (Arirang)"}
    # The same through the exact event path at an instant.
    from django.utils import timezone

    as_of = _lookup(lab_api, ("isrc", ISRC), as_of=timezone.now().isoformat())[0]
    assert as_of["status"] == "refused"
    assert as_of["refusal"]["applies_to"] == "musical_work"
    # A recording registered after the refusal is refused as well (the projection computes it on registration).
    _recording(other_holder_api, song, OTHER_ISRC)
    later = lookup_batch_current(items=[{"scheme": "isrc", "value": OTHER_ISRC}], purpose="train-ai", at=timezone.now())
    assert later.results[0]["status"] == "refused"


def test_refusing_a_recording_does_not_refuse_the_musical_work(
    other_holder: Any, other_holder_api: APIClient, staff: Any, lab_api: APIClient, song: Work
) -> None:
    recording = _recording(other_holder_api, song, ISRC)
    verify_claims(recording, staff)
    response = other_holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": recording.pk, "purposes": ["train-ai"]}, format="json"
    )
    assert response.status_code == 201
    results = _lookup(lab_api, ("isrc", ISRC), ("iswc", ISWC))
    assert [r["status"] for r in results] == ["refused", "permitted"]
    assert results[0]["refusal"]["applies_to"] == "recording"


def test_catalogue_refusal_of_the_composition_owner_reaches_recordings_once_verified(
    holder: Any, holder_api: APIClient, other_holder_api: APIClient, staff: Any, lab_api: APIClient, song: Work
) -> None:
    _recording(other_holder_api, song, ISRC)
    holder_api.post("/api/v1/refusals", {"scope": "catalogue", "purposes": ["train-ai"]}, format="json")
    result = _lookup(lab_api, ("isrc", ISRC))[0]
    assert result["status"] == "refused"
    assert result["refusal"]["applies_to"] == "musical_work"


def test_an_unverified_composition_claim_only_marks_the_refusal_pending(
    holder_api: APIClient, other_holder_api: APIClient, staff: Any, lab_api: APIClient, other_holder: Any
) -> None:
    composition = WorkFactory(kind="musical_work", identifiers=[("iswc", ISWC)])
    recording = _recording(other_holder_api, composition, ISRC)
    verify_claims(recording, staff)
    from core.actors import Actor
    from optout.services import refusal_file

    claim = composition.claims.get()
    refusal_file(
        actor=Actor(party=claim.holder), holder=claim.holder, scope="work", purposes=["train-ai"], work=composition
    )
    result = _lookup(lab_api, ("isrc", ISRC))[0]
    assert result["status"] == "permitted"
    assert result["pending_refusal"] is True
    # Verifying the composition's owner makes the refusal decide the recording: the projection follows.
    verify_claims(composition, staff)
    assert _lookup(lab_api, ("isrc", ISRC))[0]["status"] == "refused"
