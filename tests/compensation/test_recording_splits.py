"""A use of a recording pays both its owners and its musical work's, by the staff split in force at the use; a
refusal of the musical work makes a use of its recordings a violation, a refusal of one recording does not refuse
the musical work. Through the API, the manifest worker (eager Celery), claims, settlements and their exports."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from compensation.ledger.allocation import allocate_largest_remainder
from compensation.models import (
    AccountKind,
    LineSide,
    ManifestLine,
    Outcome,
    RecordingSplit,
    Statement,
    StatementLine,
    UsageManifest,
)
from compensation.usage.decisions import musical_work_part
from compensation.usage.selectors import manifest_outcome_summary
from compensation.usage.services import usage_engines, usage_manifest_process, usage_manifest_submit_json
from core.actors import Actor
from optout.models import Purpose
from optout.services import refusal_file
from registry.models import AuditEvent, Party, Work, WorkKind
from registry.services import work_draft_build, work_register
from tests.compensation.helpers import MANIFESTS, assert_conserved, balance, manifest_body
from tests.factories import ClaimFactory, HolderFactory, RefusalFactory, TariffFactory, WorkFactory, verify_claims
from tests.helpers import seoul

pytestmark = pytest.mark.django_db

SPLITS = "/api/v1/recording-splits"
ISWC = "T-034.524.680-1"
UNCLAIMED_ISWC = "T-345.246.800-3"
ISRC = "KRA012600001"
UNCLAIMED_SONG_ISRC = "KRA012600002"
# 3.333333 seconds at 0.7 KRW a second: 2,333,333.1 µ₩, priced 2,333,333 µ₩ (an odd amount).
ODD_SECONDS = "3.333333"
ODD_AMOUNT = 2_333_333


def _recording(title: str, isrc: str, song: Work, label: Party, staff: Any, share_bp: int = 10_000) -> Work:
    draft = work_draft_build(
        title=title,
        kind=WorkKind.AUDIO,
        identifiers=[{"scheme": "isrc", "value": isrc}],
        share_bp=share_bp,
        musical_work=song,
    )
    work, _claim = work_register(actor=Actor(party=label, is_system=True), holder=label, draft=draft)
    verify_claims(work, staff)
    return work


@pytest.fixture
def music(clock: Any, staff: Any, holder: Any, other_holder: Any) -> dict[str, Any]:
    """A song (musical work) published by ``holder`` (66.67%) and written by a writer (33.33%), and its recording
    by the label ``other_holder`` (70%) and a producer (30%); a second song nobody has verified, and its recording,
    wholly the label's. Audio is priced 0.7 KRW a second since long ago."""
    TariffFactory(kind="audio", unit="second", rate_krw=Decimal("0.7"), set_by=staff)
    writer = HolderFactory(name="Kim Minsu")
    producer = HolderFactory(name="Mapo Studio")
    song = WorkFactory(
        holder=holder, kind=WorkKind.MUSICAL_WORK, identifiers=[("iswc", ISWC)], title="Arirang", share_bp=6667
    )
    ClaimFactory(work=song, holder=writer, share_bp=3333)
    verify_claims(song, staff)
    recording = _recording("Arirang (live)", ISRC, song, other_holder, staff, share_bp=7000)
    ClaimFactory(work=recording, holder=producer, share_bp=3000, verified_by=staff)
    unclaimed_song = WorkFactory(
        holder=writer, kind=WorkKind.MUSICAL_WORK, identifiers=[("iswc", UNCLAIMED_ISWC)], title="Doraji"
    )
    unclaimed_recording = _recording("Doraji (studio)", UNCLAIMED_SONG_ISRC, unclaimed_song, other_holder, staff)
    return {
        "song": song,
        "recording": recording,
        "unclaimed_song": unclaimed_song,
        "unclaimed_recording": unclaimed_recording,
        "writer": writer,
        "producer": producer,
    }


def _split(staff_api: APIClient, musical_work_bp: int, **extra: Any) -> Any:
    return staff_api.post(SPLITS, {"musical_work_bp": musical_work_bp, **extra}, format="json")


def _report(
    lab_api: APIClient, capture: Any, manifest_id: str, *uses: tuple[str, str, str, datetime], unit: str = "second"
) -> int:
    """The lab reports ``(scheme, value, seconds, used_at)`` uses; the worker runs eagerly. Returns the manifest."""
    lines = [
        {"scheme": scheme, "value": value, "units": seconds, "unit": unit, "used_at": at.isoformat()}
        for scheme, value, seconds, at in uses
    ]
    with capture(execute=True):
        response = lab_api.post(MANIFESTS, manifest_body(lines, manifest_id=manifest_id), format="json")
    assert response.status_code == 202, response.content
    assert lab_api.get(response.json()["url"]).json()["status"] == "processed"
    return int(response.json()["id"])


def _sides(manifest: int, line_no: int) -> dict[str, ManifestLine]:
    return {row.side: row for row in ManifestLine.objects.filter(manifest_id=manifest, line_no=line_no)}


def _paid(row: ManifestLine) -> dict[int, int]:
    return {holder: part for holder, _claim, part, _entry in row.allocation}


def _ledger_check_passes() -> None:
    out = io.StringIO()
    call_command("ledger_check", stdout=out)
    assert "FAIL" not in out.getvalue().upper(), out.getvalue()


# --- The split policy ---------------------------------------------------------------------------------------


def test_staff_set_a_split_from_now_and_it_is_listed(clock: Any, staff_api: APIClient, staff: Any) -> None:
    response = _split(staff_api, 2500)

    assert response.status_code == 201, response.content
    split = RecordingSplit.objects.get()
    assert (split.kind, split.musical_work_bp, split.effective_from, split.created_by) == (
        "audio",
        2500,
        timezone.now(),
        staff,
    )
    assert AuditEvent.objects.filter(code="compensation.recording_split.set", object_id=str(split.pk)).exists()
    listed = staff_api.get(SPLITS).json()["results"]
    assert [(s["kind"], s["musical_work_bp"]) for s in listed] == [("audio", 2500)]


def test_a_split_is_refused_in_the_past_out_of_range_or_twice_at_one_instant(clock: Any, staff_api: APIClient) -> None:
    past = _split(staff_api, 2500, effective_from="2025-12-01T00:00:00+09:00")
    assert past.status_code == 400
    assert past.json()["error"]["code"] == "in_the_past"
    assert _split(staff_api, 10_001).status_code == 400
    assert _split(staff_api, 2500, kind="video").status_code == 400
    later = "2026-02-01T00:00:00+09:00"
    assert _split(staff_api, 2500, effective_from=later).status_code == 201
    again = _split(staff_api, 3000, effective_from=later)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "recording_split_exists"
    assert list(RecordingSplit.objects.values_list("musical_work_bp", flat=True)) == [2500]


def test_only_staff_set_splits(clock: Any, lab_api: APIClient, holder_api: APIClient) -> None:
    assert _split(lab_api, 2500).status_code == 403
    assert _split(holder_api, 2500).status_code == 403
    assert not RecordingSplit.objects.exists()


def test_a_split_is_never_changed_in_place_on_postgresql(clock: Any, staff_api: APIClient, on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("the append-only trigger is PostgreSQL's")
    assert _split(staff_api, 2500).status_code == 201
    with pytest.raises(DatabaseError), transaction.atomic():
        RecordingSplit.objects.update(musical_work_bp=5000)
    with pytest.raises(DatabaseError), transaction.atomic():
        RecordingSplit.objects.all().delete()
    assert RecordingSplit.objects.get().musical_work_bp == 2500


def test_staff_add_a_split_in_the_admin_through_the_service(clock: Any, staff: Any) -> None:
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    starts = timezone.localtime(timezone.now()) + timedelta(days=2)

    response = client.post(
        "/admin/compensation/recordingsplit/add/",
        {
            "kind": "audio",
            "musical_work_bp": "3000",
            "effective_from_0": starts.strftime("%Y-%m-%d"),
            "effective_from_1": starts.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    split = RecordingSplit.objects.get()
    assert (split.musical_work_bp, split.created_by) == (3000, staff)
    assert AuditEvent.objects.filter(code="compensation.recording_split.set", actor_user=staff).exists()
    # Never edited in place: the change page offers no save.
    assert client.post(f"/admin/compensation/recordingsplit/{split.pk}/change/", {}).status_code == 403


def test_a_conflicting_split_is_said_in_korean(clock: Any, staff_api: APIClient) -> None:
    later = "2026-02-01T00:00:00+09:00"
    assert _split(staff_api, 2500, effective_from=later).status_code == 201

    response = staff_api.post(
        SPLITS, {"musical_work_bp": 3000, "effective_from": later}, format="json", HTTP_ACCEPT_LANGUAGE="ko"
    )

    assert response.status_code == 409
    assert response.json()["error"]["message"] == "이 종류의 배분이 이미 같은 시각에 시작합니다."


@given(amount=st.integers(min_value=0, max_value=10**15), share=st.integers(min_value=0, max_value=10_000))
def test_the_musical_works_part_is_the_largest_remainder_of_two_ties_to_the_recording(amount: int, share: int) -> None:
    musical = musical_work_part(amount, share)
    recording = amount - musical
    assert 0 <= musical <= amount
    if 0 < share < 10_000:
        assert [recording, musical] == allocate_largest_remainder(total=amount, weights=[10_000 - share, share])
    assert abs(musical * 10_000 - amount * share) <= 5_000


def test_an_exact_half_micro_won_goes_to_the_recording() -> None:
    # 2 µ₩ at 25%: 0.5 µ₩ for the musical work, which the recording keeps; 6 µ₩ at 25%: 1.5, rounded to 1.
    assert musical_work_part(2, 2500) == 0
    assert musical_work_part(6, 2500) == 1
    assert musical_work_part(7, 2500) == 2  # 1.75


# --- Paying both sides -----------------------------------------------------------------------------------------


def test_a_recordings_use_pays_both_sides_exactly_by_the_split_in_force_at_use(
    clock: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    lab: Party,
    holder: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    writer, producer, song, recording = music["writer"], music["producer"], music["song"], music["recording"]
    before_any = seoul(2026, 1, 4, 12)
    assert _split(staff_api, 2500).status_code == 201  # from 2026-01-05 09:00
    clock(seoul(2026, 2, 1, 9))
    assert _split(staff_api, 4000).status_code == 201  # from 2026-02-01 09:00
    clock(seoul(2026, 3, 1, 9))

    manifest = _report(
        lab_api,
        django_capture_on_commit_callbacks,
        "run-music",
        ("isrc", ISRC, ODD_SECONDS, seoul(2026, 1, 20, 12)),
        ("isrc", ISRC, ODD_SECONDS, seoul(2026, 2, 10, 12)),
        ("isrc", ISRC, ODD_SECONDS, before_any),
    )

    # January: 25% of 2,333,333 µ₩ is 583,333.25, so 583,333 to the musical work and 1,750,000 to the recording.
    january = _sides(manifest, 1)
    assert set(january) == {LineSide.RECORDING, LineSide.MUSICAL_WORK}
    rec, mus = january[LineSide.RECORDING], january[LineSide.MUSICAL_WORK]
    assert (rec.work_id, rec.other_work_id, rec.outcome, rec.amount_micro) == (
        recording.pk,
        song.pk,
        Outcome.MATCHED,
        1_750_000,
    )
    assert (mus.work_id, mus.other_work_id, mus.outcome, mus.amount_micro) == (
        song.pk,
        recording.pk,
        Outcome.MATCHED,
        583_333,
    )
    assert (rec.amount_micro or 0) + (mus.amount_micro or 0) == ODD_AMOUNT
    assert _paid(rec) == {other_holder.pk: 1_225_000, producer.pk: 525_000}
    # 583,333 at 66.67% / 33.33%: 388,908.1 and 194,424.9; the micro-won left goes to the larger remainder.
    assert _paid(mus) == {holder.pk: 388_908, writer.pk: 194_425}
    assert rec.tariff_id == mus.tariff_id is not None
    assert rec.entry_id == mus.entry_id is not None

    # February: 40%: 933,333.2 to the musical work.
    february = _sides(manifest, 2)
    assert february[LineSide.MUSICAL_WORK].amount_micro == 933_333
    assert february[LineSide.RECORDING].amount_micro == 1_400_000
    assert _paid(february[LineSide.MUSICAL_WORK]) == {holder.pk: 622_253, writer.pk: 311_080}
    assert _paid(february[LineSide.RECORDING]) == {other_holder.pk: 980_000, producer.pk: 420_000}

    # Before any split: the recording's alone, one row.
    whole = _sides(manifest, 3)
    assert list(whole) == [LineSide.WHOLE]
    assert (whole[""].work_id, whole[""].amount_micro, whole[""].other_work_id) == (recording.pk, ODD_AMOUNT, None)

    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == -(388_908 + 622_253)
    assert balance(AccountKind.HOLDER_PAYABLE, party=writer) == -(194_425 + 311_080)
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == -(1_225_000 + 980_000 + 1_633_333)
    assert balance(AccountKind.HOLDER_PAYABLE, party=producer) == -(525_000 + 420_000 + 700_000)
    assert balance(AccountKind.LAB_RECEIVABLE, party=lab) == 3 * ODD_AMOUNT
    assert_conserved(lab)
    _ledger_check_passes()

    # The acknowledgement file says which side each row is and names the other side's work.
    rows = lab_api.get(f"{MANIFESTS}/{manifest}/outcomes").json()["results"]
    assert [(r["line"], r["side"], r["work_id"], r["other_work_id"], r["amount_micro"]) for r in rows] == [
        (1, "musical_work", song.pk, recording.pk, 583_333),
        (1, "recording", recording.pk, song.pk, 1_750_000),
        (2, "musical_work", song.pk, recording.pk, 933_333),
        (2, "recording", recording.pk, song.pk, 1_400_000),
        (3, "", recording.pk, None, ODD_AMOUNT),
    ]


def test_the_unclaimed_musical_work_side_is_held_in_escrow_and_released_to_its_owner(
    clock: Any,
    music: dict[str, Any],
    staff: Any,
    staff_api: APIClient,
    lab_api: APIClient,
    lab: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    song, recording, writer = music["unclaimed_song"], music["unclaimed_recording"], music["writer"]
    assert _split(staff_api, 2500).status_code == 201
    clock(seoul(2026, 1, 10, 9))

    manifest = _report(
        lab_api,
        django_capture_on_commit_callbacks,
        "run-unclaimed",
        ("isrc", UNCLAIMED_SONG_ISRC, "7", seoul(2026, 1, 6)),
    )

    # 4,900,000 µ₩: 1,225,000 for the musical work nobody has verified, held; 3,675,000 for the label.
    sides = _sides(manifest, 1)
    rec, mus = sides[LineSide.RECORDING], sides[LineSide.MUSICAL_WORK]
    assert (rec.outcome, rec.amount_micro, _paid(rec)) == (Outcome.MATCHED, 3_675_000, {other_holder.pk: 3_675_000})
    assert (mus.outcome, mus.amount_micro, mus.held_micro, mus.paid_micro) == (
        Outcome.SHARE_UNCLAIMED,
        1_225_000,
        1_225_000,
        0,
    )
    assert mus.held_account is not None
    assert (mus.held_account.kind, mus.held_account.escrow_key) == (AccountKind.ESCROW_UNCLAIMED, f"work:{song.pk}")
    assert balance(AccountKind.ESCROW_UNCLAIMED, key=f"work:{song.pk}") == -1_225_000
    assert not ManifestLine.objects.filter(held_account__escrow_key=f"work:{recording.pk}").exists()
    assert_conserved(lab)

    # The writer's claim is verified: the musical work's side is released to it, once.
    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(song, staff)
    assert balance(AccountKind.HOLDER_PAYABLE, party=writer) == -1_225_000
    assert balance(AccountKind.ESCROW_UNCLAIMED, key=f"work:{song.pk}") == 0
    mus.refresh_from_db()
    assert (mus.released_micro, mus.hold_open, _paid(mus)) == (1_225_000, False, {writer.pk: 1_225_000})
    _ledger_check_passes()


def test_a_disputed_recording_holds_its_side_while_the_musical_work_is_paid(
    clock: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    Work.objects.filter(pk=music["recording"].pk).update(status="disputed")
    assert _split(staff_api, 5000).status_code == 201
    clock(seoul(2026, 1, 10, 9))

    manifest = _report(
        lab_api, django_capture_on_commit_callbacks, "run-disputed", ("isrc", ISRC, "7", seoul(2026, 1, 6))
    )

    sides = _sides(manifest, 1)
    assert (sides["recording"].outcome, sides["recording"].held_micro) == (Outcome.DISPUTED_HELD, 2_450_000)
    assert sides["recording"].held_account is not None
    assert sides["recording"].held_account.kind == AccountKind.ESCROW_DISPUTED
    assert (sides["musical_work"].outcome, sides["musical_work"].paid_micro) == (Outcome.MATCHED, 2_450_000)
    assert _paid(sides["musical_work"])[holder.pk] == 1_633_415  # 66.67% of 2,450,000 = 1,633,415


def test_an_unpriced_recordings_use_is_split_when_a_tariff_prices_it(
    clock: Any,
    music: dict[str, Any],
    staff: Any,
    staff_api: APIClient,
    lab_api: APIClient,
    lab: Party,
    holder: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert _split(staff_api, 2500).status_code == 201
    clock(seoul(2026, 1, 10, 9))
    manifest = _report(
        lab_api, django_capture_on_commit_callbacks, "run-items", ("isrc", ISRC, "1", seoul(2026, 1, 6)), unit="item"
    )
    assert [(r.side, r.outcome) for r in ManifestLine.objects.filter(manifest_id=manifest)] == [("", Outcome.UNPRICED)]

    # Audio per item, from before that use (before the first audio item tariff): the use is priced and split now.
    with django_capture_on_commit_callbacks(execute=True):
        TariffFactory(kind="audio", unit="item", rate_krw=Decimal("5"), set_by=staff)

    sides = _sides(manifest, 1)
    assert {side: (row.outcome, row.amount_micro) for side, row in sides.items()} == {
        "recording": (Outcome.MATCHED, 3_750_000),
        "musical_work": (Outcome.MATCHED, 1_250_000),
    }
    assert sides["musical_work"].other_work_id == music["recording"].pk
    assert _paid(sides["musical_work"])[holder.pk] == 833_375  # 66.67% of 1,250,000
    assert _paid(sides["recording"])[other_holder.pk] == 2_625_000
    assert_conserved(lab)
    _ledger_check_passes()


# --- Refusals ------------------------------------------------------------------------------------------------


def test_a_refused_musical_work_makes_its_recordings_use_a_violation_naming_its_refusal(
    clock: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    holder_api: APIClient,
    lab: Party,
    holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert _split(staff_api, 2500).status_code == 201
    refusal = RefusalFactory(work=music["song"], holder=holder)  # from 2026-01-05 09:00
    clock(seoul(2026, 1, 10, 9))

    manifest = _report(
        lab_api,
        django_capture_on_commit_callbacks,
        "run-refused",
        ("isrc", ISRC, ODD_SECONDS, seoul(2026, 1, 6)),
        ("isrc", ISRC, ODD_SECONDS, seoul(2026, 1, 4)),  # before the refusal: paid, split
    )

    (violation,) = ManifestLine.objects.filter(manifest_id=manifest, line_no=1)
    assert (violation.outcome, violation.side, violation.work_id, violation.refusal_id) == (
        Outcome.REFUSED_AT_USE,
        "",
        music["recording"].pk,
        refusal.pk,
    )
    assert (violation.violation_micro, violation.paid_micro, violation.held_micro) == (ODD_AMOUNT, 0, 0)
    before = _sides(manifest, 2)
    assert {side: row.outcome for side, row in before.items()} == {"": Outcome.MATCHED}  # no split before 01-05
    assert balance(AccountKind.VIOLATIONS, party=lab) == -ODD_AMOUNT
    assert_conserved(lab)
    # The musical work's owner, whose refusal decided, sees the violation of the recording it does not own.
    listed = holder_api.get("/api/v1/violations").json()["results"]
    assert [(v["line"], v["work"], v["refusal"]) for v in listed] == [(1, music["recording"].pk, refusal.pk)]


def test_a_refused_recording_does_not_refuse_its_musical_work(
    clock: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    holder: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    TariffFactory(kind="musical_work", unit="second", rate_krw=Decimal("0.3"))
    refusal = RefusalFactory(work=music["recording"], holder=other_holder)
    clock(seoul(2026, 1, 10, 9))

    manifest = _report(
        lab_api,
        django_capture_on_commit_callbacks,
        "run-recording-refused",
        ("isrc", ISRC, "7", seoul(2026, 1, 6)),
        ("iswc", ISWC, "10", seoul(2026, 1, 6)),
    )

    recording_use, song_use = ManifestLine.objects.filter(manifest_id=manifest).order_by("line_no")
    assert (recording_use.outcome, recording_use.refusal_id) == (Outcome.REFUSED_AT_USE, refusal.pk)
    assert (song_use.outcome, song_use.work_id, song_use.refusal_id) == (Outcome.MATCHED, music["song"].pk, None)
    assert song_use.amount_micro == song_use.paid_micro == 3_000_000
    assert _paid(song_use) == {holder.pk: 2_000_100, music["writer"].pk: 999_900}


# --- Statements ---------------------------------------------------------------------------------------------


def test_statements_and_their_exports_show_each_side_and_name_the_other_work(
    clock: Any,
    owner: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    holder_api: APIClient,
    other_holder_api: APIClient,
    holder: Party,
    other_holder: Party,
    settle: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    song, recording = music["song"], music["recording"]
    assert _split(staff_api, 2500).status_code == 201
    clock(seoul(2026, 1, 20, 12))
    _report(lab_api, django_capture_on_commit_callbacks, "run-january", ("isrc", ISRC, ODD_SECONDS, seoul(2026, 1, 20)))
    clock(seoul(2026, 2, 3, 9))

    body = settle("2026-01-01", "2026-01-31")

    assert body["status"] == "settled"
    publisher = Statement.objects.get(settlement_id=body["id"], holder=holder)
    label = Statement.objects.get(settlement_id=body["id"], holder=other_holder)
    assert publisher.accrued_micro == 388_908
    assert label.accrued_micro == 1_225_000
    lines = holder_api.get(f"/api/v1/statements/{publisher.pk}/lines").json()["results"]
    assert [(x["work"], x["side"], x["other_work"], x["other_work_title"], x["amount_micro"]) for x in lines] == [
        (song.pk, "musical_work", recording.pk, "Arirang (live)", 388_908)
    ]
    (label_line,) = StatementLine.objects.filter(statement=label)
    assert (label_line.work_id, label_line.side, label_line.other_work_id, label_line.amount_micro) == (
        recording.pk,
        "recording",
        song.pk,
        1_225_000,
    )
    _ledger_check_passes()

    response = holder_api.get(f"/api/v1/statements/{publisher.pk}/export?format=csv", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    text = content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = next(row for row in rows if "Side" in row)
    data = next(row for row in rows if row and row[0] == "Accrued" and len(row) == len(header))
    assert data[header.index("Side")] == "Musical work"
    assert data[header.index("Other side's work")] == f"{recording.pk} Arirang (live)"
    # The holder's statement page says it too, in Korean.
    page = APIClient()
    page.force_login(owner)
    html = page.get(f"/dashboard/statements/{publisher.pk}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "음악저작물 쪽: 음반 “Arirang (live)”을(를) 통해 이용되었습니다" in html


# --- Both engines --------------------------------------------------------------------------------------------


def _engine_rows(manifest: int) -> list[tuple[Any, ...]]:
    return [
        (
            row.line_no,
            row.side,
            row.outcome,
            row.work_id,
            row.other_work_id,
            row.refusal_id,
            row.amount_micro,
            row.paid_micro,
            row.held_micro,
            row.violation_micro,
            row.held_account.escrow_key if row.held_account else "",
            row.open_bp,
            [part[:3] for part in row.allocation],
        )
        for row in ManifestLine.objects.filter(manifest_id=manifest)
        .select_related("held_account")
        .order_by("line_no", "side")
    ]


def test_every_engine_decides_recordings_alike(
    clock: Any, music: dict[str, Any], staff: Any, staff_api: APIClient, lab: Party, holder: Party, other_holder: Party
) -> None:
    """The Python engine everywhere and, on PostgreSQL, the SQL engine: the same rows and the same expected ones."""
    assert _split(staff_api, 2500).status_code == 201
    disputed_song = WorkFactory(
        holder=holder, kind=WorkKind.MUSICAL_WORK, identifiers=[("iswc", "T-101.010.101-4")], verified_by=staff
    )
    Work.objects.filter(pk=disputed_song.pk).update(status="disputed")
    disputed_song_recording = _recording("Live", "KRA012600003", disputed_song, other_holder, staff)
    # A songwriter who owns only this song refuses her whole catalogue: its recording's use is refused.
    songwriter = HolderFactory(name="Busan Songs")
    catalogue_song = WorkFactory(
        holder=songwriter, kind=WorkKind.MUSICAL_WORK, identifiers=[("iswc", "T-200.000.000-7")], verified_by=staff
    )
    _recording("Cover", "KRA012600004", catalogue_song, other_holder, staff)
    writer_catalogue = refusal_file(
        actor=Actor(party=songwriter), holder=songwriter, scope="catalogue", purposes=["train-ai"]
    )
    clock(seoul(2026, 1, 10, 9))
    at = seoul(2026, 1, 6).isoformat()
    lines = [
        {"scheme": "isrc", "value": value, "units": units, "unit": "second", "used_at": at}
        for value, units in (
            (ISRC, ODD_SECONDS),
            (ISRC, "1"),
            (UNCLAIMED_SONG_ISRC, "7"),
            ("KRA012600003", "7"),
            ("KRA012600004", "7"),
            ("KRA012699999", "7"),
            (ISRC, "0.000003"),  # 2.1 µ₩, priced 2: a quarter of it is exactly half a micro-won
        )
    ]
    decided = {}
    for engine in usage_engines(connection):
        manifest, _created = usage_manifest_submit_json(
            actor=Actor(party=lab, is_system=True),
            data={"manifest_id": f"music-{engine.name}", "model": "m", "purpose": Purpose.TRAIN_AI, "lines": lines},
        )
        usage_manifest_process(manifest_id=manifest.pk, engine=engine.name)
        decided[engine.name] = _engine_rows(manifest.pk)

    rows = decided["python"]
    outcomes = [(no, side, outcome) for no, side, outcome, *_rest in rows]
    assert outcomes == [
        (1, "musical_work", Outcome.MATCHED),
        (1, "recording", Outcome.MATCHED),
        (2, "musical_work", Outcome.MATCHED),
        (2, "recording", Outcome.MATCHED),
        (3, "musical_work", Outcome.SHARE_UNCLAIMED),
        (3, "recording", Outcome.MATCHED),
        (4, "musical_work", Outcome.DISPUTED_HELD),
        (4, "recording", Outcome.MATCHED),
        (5, "", Outcome.REFUSED_AT_USE),
        (6, "", Outcome.UNMATCHED_HELD),
        (7, "musical_work", Outcome.MATCHED),
        (7, "recording", Outcome.MATCHED),
    ]
    # 700,000 µ₩ at 25%: 175,000 to the musical work; a sub-micro-won split never loses a micro-won.
    assert [row[6] for row in rows[2:4]] == [175_000, 525_000]
    assert rows[6][10] == f"work:{disputed_song.pk}"
    assert rows[7][3] == disputed_song_recording.pk
    assert rows[8][5] == writer_catalogue.pk
    # The exact half micro-won stays with the recording.
    assert [(row[1], row[6]) for row in rows[10:]] == [("musical_work", 0), ("recording", 2)]
    for name, engine_rows in decided.items():
        assert engine_rows == rows, f"engine {name} differs from python"
    assert_conserved(lab)
    _ledger_check_passes()


# --- Counting lines, not rows -------------------------------------------------------------------------------

UNREGISTERED_ISRC = "KRA012699999"


def _report_three_uses(lab_api: APIClient, capture: Any, staff_api: APIClient, clock: Any) -> int:
    """A split of 25% from now; in January a use of each recording and of an ISRC nobody registered, 7 seconds
    each (4,900,000 µ₩): the claimed song's recording is matched on both sides; the unclaimed song's recording is
    matched on its recording side (3,675,000) and holds its musical-work side (1,225,000); the last is held."""
    assert _split(staff_api, 2500).status_code == 201
    clock(seoul(2026, 1, 10, 9))
    return _report(
        lab_api,
        capture,
        "run-counts",
        ("isrc", ISRC, "7", seoul(2026, 1, 6)),
        ("isrc", UNCLAIMED_SONG_ISRC, "7", seoul(2026, 1, 6)),
        ("isrc", UNREGISTERED_ISRC, "7", seoul(2026, 1, 6)),
    )


def test_a_manifests_summary_counts_a_split_line_once_under_its_recording_sides_outcome(
    clock: Any,
    music: dict[str, Any],
    lab: Party,
    staff_api: APIClient,
    lab_api: APIClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    manifest = _report_three_uses(lab_api, django_capture_on_commit_callbacks, staff_api, clock)
    assert ManifestLine.objects.filter(manifest_id=manifest).count() == 5  # two split lines, two rows each

    response = lab_api.get(f"/api/v1/usage-manifests/{manifest}")

    assert response.status_code == 200
    body = response.json()
    summary = body["summary"]
    outcomes = {
        code: values for code, values in summary["outcomes"].items() if values["lines"] or values["amount_micro"]
    }
    assert outcomes == {
        Outcome.MATCHED: {"lines": 2, "amount_micro": 4_900_000 + 3_675_000},
        # The unclaimed song's side: its amount, but no line of its own (the line counts as matched).
        Outcome.SHARE_UNCLAIMED: {"lines": 0, "amount_micro": 1_225_000},
        Outcome.UNMATCHED_HELD: {"lines": 1, "amount_micro": 4_900_000},
    }
    assert summary["totals"]["lines"] == body["lines_total"] == 3
    assert sum(values["lines"] for values in summary["outcomes"].values()) == 3
    assert summary["totals"]["amount_micro"] == 3 * 4_900_000
    assert summary["totals"]["held_micro"] == 1_225_000 + 4_900_000
    # The summary stored when processing ended is the one computed now.
    stored = UsageManifest.objects.get(pk=manifest)
    assert stored.summary == manifest_outcome_summary(manifest=stored)
    # One stored before lines were counted once (its totals have no lines) is not shown: it is computed afresh.
    stale = {"outcomes": {Outcome.MATCHED: {"lines": 4, "amount_micro": 0}}, "totals": {"amount_micro": 0}}
    UsageManifest.objects.filter(pk=manifest).update(summary=stale)
    assert lab_api.get(f"/api/v1/usage-manifests/{manifest}").json()["summary"] == summary
    # The lab's portal page lists the held side's outcome too: an amount with no line of its own.
    page = Client()
    page.force_login(lab.memberships.get().user)
    html = page.get(f"/dashboard/manifests/{manifest}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<code>share_unclaimed</code>" in html


def test_an_invoice_counts_uses_and_sums_both_sides_amounts(
    clock: Any,
    music: dict[str, Any],
    staff_api: APIClient,
    lab_api: APIClient,
    settle: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    manifest = _report_three_uses(lab_api, django_capture_on_commit_callbacks, staff_api, clock)
    clock(seoul(2026, 2, 3, 9))

    body = settle("2026-01-01", "2026-01-31")

    assert body["status"] == "settled"
    invoice = lab_api.get("/api/v1/invoices").json()["results"][0]
    response = lab_api.get(f"/api/v1/invoices/{invoice['id']}/lines")
    assert response.status_code == 200
    usage = {
        line["outcome"]: (line["lines"], line["amount_micro"])
        for line in response.json()["results"]
        if line["section"] == "usage" and line["manifest"] == manifest
    }
    assert usage == {
        Outcome.MATCHED: (2, 8_575_000),
        Outcome.SHARE_UNCLAIMED: (0, 1_225_000),
        Outcome.UNMATCHED_HELD: (1, 4_900_000),
    }
    assert sum(lines for lines, _amount in usage.values()) == 3
    assert sum(amount for _lines, amount in usage.values()) == 3 * 4_900_000
    _ledger_check_passes()


def test_the_match_rate_counts_a_split_line_once(
    clock: Any,
    music: dict[str, Any],
    staff: Any,
    staff_api: APIClient,
    lab_api: APIClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _report_three_uses(lab_api, django_capture_on_commit_callbacks, staff_api, clock)
    client = Client()
    client.force_login(staff)

    response = client.get(
        "/admin/compensation/reports/match-rate/?first=2026-01-01&last=2026-01-31", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    (row,) = response.context["report"].tables[0].rows
    matched_lines, held_lines, by_line = row[7:10]
    # Two matched lines (one of them holds its musical-work side), one held: three lines, as the lab sent.
    assert (matched_lines, held_lines, by_line) == (2, 1, Decimal("66.67"))


# --- Escrow of an unregistered recording, released by the split in force at use ------------------------------


def _held_unregistered_use(
    lab_api: APIClient, capture: Any, staff_api: APIClient, clock: Any, seconds: str = "7", amount: int = 4_900_000
) -> ManifestLine:
    """A split of 25% from now; in January a use of an ISRC nobody registered, 7 seconds: 4,900,000 µ₩ held."""
    assert _split(staff_api, 2500).status_code == 201
    clock(seoul(2026, 1, 10, 9))
    manifest = _report(lab_api, capture, "run-unregistered", ("isrc", UNREGISTERED_ISRC, seconds, seoul(2026, 1, 6)))
    (line,) = ManifestLine.objects.filter(manifest_id=manifest)
    assert (line.outcome, line.held_micro, line.hold_open) == (Outcome.UNMATCHED_HELD, amount, True)
    return line


def test_a_hold_for_an_unregistered_recording_is_released_to_both_sides_by_the_split_in_force_at_use(
    clock: Any,
    music: dict[str, Any],
    staff: Any,
    staff_api: APIClient,
    lab_api: APIClient,
    lab: Party,
    holder: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # An odd amount: 2,333,333 µ₩, of which the musical work's 25% is 583,333.25, rounded to 583,333.
    line = _held_unregistered_use(
        lab_api, django_capture_on_commit_callbacks, staff_api, clock, seconds=ODD_SECONDS, amount=ODD_AMOUNT
    )
    # A later split does not reach the use.
    clock(seoul(2026, 1, 20, 9))
    assert _split(staff_api, 9000).status_code == 201

    # The label registers the recording, naming the claimed song; its claim verified, the hold is released.
    with django_capture_on_commit_callbacks(execute=True):
        recording = _recording("Arirang (remix)", UNREGISTERED_ISRC, music["song"], other_holder, staff)

    musical = musical_work_part(ODD_AMOUNT, 2500)
    assert musical == 583_333
    publisher, writer = allocate_largest_remainder(total=musical, weights=[6667, 3333])
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == -publisher
    assert balance(AccountKind.HOLDER_PAYABLE, party=music["writer"]) == -writer
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == -1_750_000
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open) == (ODD_AMOUNT, False)
    assert _paid(line) == {holder.pk: publisher, music["writer"].pk: writer, other_holder.pk: 1_750_000}
    assert publisher + writer + 1_750_000 == ODD_AMOUNT
    assert balance(AccountKind.ESCROW_UNMATCHED, key=line.held_account.escrow_key) == 0  # type: ignore[union-attr]
    assert recording.musical_work_id == music["song"].pk
    assert_conserved(lab)
    _ledger_check_passes()

    # Running the release again moves nothing.
    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(recording, staff)
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == -1_750_000


def test_an_unregistered_recordings_musical_work_side_stays_held_until_its_owner_is_verified(
    clock: Any,
    music: dict[str, Any],
    staff: Any,
    staff_api: APIClient,
    lab_api: APIClient,
    lab: Party,
    other_holder: Party,
    django_capture_on_commit_callbacks: Any,
) -> None:
    line = _held_unregistered_use(lab_api, django_capture_on_commit_callbacks, staff_api, clock)
    song, writer = music["unclaimed_song"], music["writer"]

    with django_capture_on_commit_callbacks(execute=True):
        _recording("Doraji (remix)", UNREGISTERED_ISRC, song, other_holder, staff)

    # The recording's side goes to the label; the song's, nobody's yet, stays held.
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == -3_675_000
    assert balance(AccountKind.HOLDER_PAYABLE, party=writer) == 0
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open) == (3_675_000, True)
    assert balance(AccountKind.ESCROW_UNMATCHED, key=line.held_account.escrow_key) == -1_225_000  # type: ignore[union-attr]
    _ledger_check_passes()

    # The writer's claim to the song is verified: the song's side is released to it, once.
    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(song, staff)
    assert balance(AccountKind.HOLDER_PAYABLE, party=writer) == -1_225_000
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == -3_675_000
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open) == (4_900_000, False)
    assert_conserved(lab)
    _ledger_check_passes()
