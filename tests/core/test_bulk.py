"""core.bulk: COPY on PostgreSQL and bulk_create elsewhere write the same rows."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.actors import Actor
from core.bulk import copy_available, rows_as_instances, rows_insert
from registry.models import AuditEvent, ClaimStatus, Identifier, OwnershipClaim, Party, Work, WorkStatus
from registry.services import party_create

pytestmark = pytest.mark.django_db


def _paths() -> list[bool]:
    return [False, True] if copy_available() else [False]


@pytest.fixture
def holder() -> Party:
    return party_create(actor=Actor.system(), kind="holder", name="Bulk holder")


def _stored(model: type[Any], pks: list[int], *, without: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    names = [f.attname for f in model._meta.concrete_fields if not f.primary_key and f.attname not in without]
    by_pk = {row[0]: row[1:] for row in model.objects.filter(pk__in=pks).values_list("pk", *names)}
    return [by_pk[pk] for pk in pks]


def test_copy_is_the_path_on_postgresql_only() -> None:
    assert copy_available() == (connection.vendor == "postgresql")


def test_both_paths_store_the_same_rows_with_defaults_json_and_nulls(holder: Party) -> None:
    now = timezone.now()
    stored: dict[bool, dict[str, list[tuple[Any, ...]]]] = {}
    for copy in _paths():
        works = rows_as_instances(
            Work,
            rows_insert(
                Work,
                [
                    {
                        "kind": "musical_work",
                        "title": f"Song {n}",
                        "creators": ["Kim", "이"],
                        "language": "ko",
                        "creation_year": None if n else 2020,
                        "status": WorkStatus.UNVERIFIED.value,
                        "registered_by_id": holder.pk,
                        "created_at": now,
                        "musical_work_id": None,
                    }
                    for n in range(3)
                ],
                copy=copy,
            ),
        )
        claims = rows_insert(
            OwnershipClaim,
            [
                {
                    "work_id": w.pk,
                    "holder_id": holder.pk,
                    "share_bp": 5000,
                    "valid_from": date(2026, 1, 2),
                    "created_at": now,
                }
                for w in works
            ],
            copy=copy,
        )
        events = rows_insert(
            AuditEvent,
            [
                {
                    "code": "bulk.test",
                    "created_at": now,
                    "object_type": "registry.work",
                    "object_id": str(w.pk),
                    "data": {"n": n, "text": 'quote " and \\ backslash\ttab', "list": [1, None]},
                }
                for n, w in enumerate(works)
            ],
            copy=copy,
        )
        work_pks = [w.pk for w in works]
        stored[copy] = {
            "works": _stored(Work, work_pks, without=("created_at",)),
            "claims": _stored(OwnershipClaim, [row[0] for row in claims], without=("work_id", "created_at")),
            "events": _stored(AuditEvent, [row[0] for row in events], without=("object_id", "created_at")),
        }
        # What the caller gets back is what was stored: the keys are the rows' keys, in order.
        assert [w.title for w in Work.objects.filter(pk__in=work_pks).order_by("pk")] == ["Song 0", "Song 1", "Song 2"]
        assert works[0].creators == ["Kim", "이"]
        assert works[0].status == "unverified"
        assert sorted(work_pks) == work_pks
        assert [row[0] for row in claims] == list(
            OwnershipClaim.objects.filter(work_id__in=work_pks).order_by("work_id").values_list("pk", flat=True)
        )

    first = stored[False]
    assert first["claims"][0][2:4] == (date(2026, 1, 2), ClaimStatus.PENDING)
    assert {"n": 0, "text": 'quote " and \\ backslash\ttab', "list": [1, None]} in first["events"][0]
    for copy, tables in stored.items():
        assert tables == first, f"copy={copy}"


@pytest.mark.parametrize("copy", [False, True])
def test_a_unique_violation_is_djangos_integrity_error(holder: Party, copy: bool) -> None:
    if copy and not copy_available():
        pytest.skip("COPY is PostgreSQL's")
    work = Work.objects.create(kind="text", title="Taken", registered_by=holder)
    Identifier.objects.create(work=work, scheme="isbn", value="9788936434021")
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Identifier, [{"work_id": work.pk, "scheme": "isbn", "value": "9788936434021"}], copy=copy)


def test_no_rows_write_nothing() -> None:
    assert rows_insert(Work, []) == []


def test_instances_of_written_rows_behave_as_instances_read_from_the_database(holder: Party) -> None:
    now = timezone.now()
    row = {"kind": "text", "title": "Made", "creators": ["Kim"], "registered_by_id": holder.pk, "created_at": now}
    (work,) = rows_as_instances(Work, rows_insert(Work, [row]))
    read = Work.objects.get(pk=work.pk)

    assert [getattr(work, f.attname) for f in Work._meta.concrete_fields] == [
        getattr(read, f.attname) for f in Work._meta.concrete_fields
    ]
    assert (work._state.adding, work._state.db) == (False, read._state.db)
    assert work == read
    assert work.registered_by == holder
    # Saved as an existing row: an UPDATE, never a second INSERT.
    work.title = "Renamed"
    work.save(update_fields=["title"])
    assert list(Work.objects.filter(registered_by=holder).values_list("title", flat=True)) == ["Renamed"]


def test_instances_are_made_by_the_models_constructor_when_something_listens_to_it(holder: Party) -> None:
    from django.db.models.signals import post_init

    seen: list[int] = []

    def listener(sender: Any, instance: Work, **kwargs: Any) -> None:
        seen.append(instance.pk)

    post_init.connect(listener, sender=Work)
    try:
        row = {"kind": "text", "title": "Watched", "registered_by_id": holder.pk, "created_at": timezone.now()}
        (work,) = rows_as_instances(Work, rows_insert(Work, [row]))
    finally:
        post_init.disconnect(listener, sender=Work)

    # (SQLite's bulk_create makes an instance of its own first, before its key is known.)
    assert seen[-1] == work.pk
