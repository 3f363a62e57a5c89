"""Migrations registry 0006 and optout 0008: stored URL keys become canonical; collisions become disputes.

Builds the state before them with the historical models, runs them with Django's MigrationExecutor, and checks that
nothing is lost, the key stays unique, both works are disputed and audited, staff can resolve the conflict, and
``status_check`` finds the projection equal to the events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.actors import Actor

BEFORE = [("registry", "0008_work_search"), ("optout", "0007_segment_work_brief")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before(transactional_db: Any) -> Any:
    apps = _migrate(BEFORE)
    yield apps
    # Back to the project's head for the next tests, whatever happened.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_colliding_url_identifiers_become_a_dispute_and_nothing_is_lost(before: Any) -> None:
    party = before.get_model("registry", "Party")
    work_model = before.get_model("registry", "Work")
    identifier_model = before.get_model("registry", "Identifier")
    holder = party.objects.create(kind="holder", name="Hangang Press")
    other = party.objects.create(kind="holder", name="Other Press")
    now = timezone.now()
    first = work_model.objects.create(kind="text", title="Spring garden", registered_by=holder, status="verified")
    second = work_model.objects.create(kind="text", title="Spring garden (copy)", registered_by=other)
    plain = work_model.objects.create(kind="text", title="Another page", registered_by=holder)
    # The values as the previous normalizer stored them (url-normalize only).
    identifier_model.objects.create(
        work=first,
        scheme="url",
        value="http://www.blog.example.kr/spring-garden/1/",
        created_at=now - timedelta(days=3),
    )
    identifier_model.objects.create(
        work=second, scheme="url", value="https://blog.example.kr/spring-garden/1", created_at=now - timedelta(days=2)
    )
    identifier_model.objects.create(
        work=first,
        scheme="url",
        value="https://blog.example.kr/spring-garden/1?utm_source=twitter",
        created_at=now - timedelta(days=1),
    )
    identifier_model.objects.create(work=plain, scheme="url", value="https://blog.example.kr/other/", created_at=now)
    identifier_model.objects.create(work=plain, scheme="isbn", value="9780306406157", created_at=now)

    _migrate([("registry", "0009_canonical_urls"), ("optout", "0008_canonical_url_prefixes")])

    from registry.models import AuditEvent, Identifier, IdentifierConflict, Work

    keys = {(i.scheme, i.value): (i.work_id, i.spelling) for i in Identifier.objects.all()}
    assert keys == {
        ("url", "https://blog.example.kr/spring-garden/1"): (first.pk, "http://www.blog.example.kr/spring-garden/1/"),
        ("url", "https://blog.example.kr/other"): (plain.pk, "https://blog.example.kr/other/"),
        ("isbn", "9780306406157"): (plain.pk, ""),
    }
    (conflict,) = IdentifierConflict.objects.all()
    assert (conflict.scheme, conflict.value, conflict.kept_by_id, conflict.work_id, conflict.status) == (
        "url",
        "https://blog.example.kr/spring-garden/1",
        first.pk,
        second.pk,
        "open",
    )
    assert conflict.spelling == "https://blog.example.kr/spring-garden/1"
    statuses = dict(Work.objects.values_list("pk", "status"))
    assert (statuses[first.pk], statuses[second.pk], statuses[plain.pk]) == ("disputed", "disputed", "unverified")
    codes = sorted(AuditEvent.objects.values_list("code", "object_id"))
    assert ("registry.identifier.conflict_opened", str(conflict.pk)) in codes
    assert ("registry.work.disputed", str(first.pk)) in codes
    assert ("registry.work.disputed", str(second.pk)) in codes
    # The same work's second spelling is kept as an audit record, not a conflict.
    assert ("registry.work.identifier_merged", str(first.pk)) in codes

    # Staff resolve it with today's services, which read today's tables: the later migrations first.
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    # Staff resolve it in favour of the later work: the key moves, both works leave the dispute.
    from registry.services import identifier_conflict_resolve
    from tests.factories import StaffUserFactory

    staff = StaffUserFactory()
    identifier_conflict_resolve(
        actor=Actor(user=staff), conflict=conflict, resolution="moved", reason="the copy is the original"
    )

    moved = Identifier.objects.get(scheme="url", value="https://blog.example.kr/spring-garden/1")
    assert (moved.work_id, moved.spelling) == (second.pk, "https://blog.example.kr/spring-garden/1")
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolution, conflict.decided_by_id) == ("resolved", "moved", staff.pk)
    statuses = dict(Work.objects.values_list("pk", "status"))
    assert statuses[first.pk] != "disputed"
    assert statuses[second.pk] != "disputed"
    assert AuditEvent.objects.filter(code="registry.identifier.conflict_resolved", object_id=str(conflict.pk)).exists()

    from optout.status.selectors import status_differences

    assert list(status_differences()) == []
