"""Where the lookup reads its rows: the seam between PostgreSQL and SQLite for refusal lookups.

The lookup's rules are Python and the same on every database (``optout.selectors``: which refusal decides, the
longest URL prefix, the regime in force, what a use is owed). What the databases do differently is only how the
rows those rules read are fetched, so that is all an engine does, with the same columns and meanings on both:

``works(values_by_scheme, as_of)``
    One row per identifier asked about and live (not rejected) claim on its work, or one row with a NULL claim:
    ``(scheme, value, work_id, title, kind, status, holder_id, verified_then)``, where ``verified_then`` is
    whether that claim was verified by ``as_of``.
``refusals(work_ids, holder_ids, url_hosts, purposes, as_of)``
    The refusals for one of ``purposes`` on those works (scope ``work``), by those holders (``catalogue``) or on
    those hosts (``url_prefix``): ``(id, holder_id, scope, purpose, work_id, url_prefix, url_host,
    effective_from, withdrawn_at, domain_verified, domain_verified_at)``; ``withdrawn_at`` is the first
    withdrawal's instant, ``domain_verified`` whether the prefix's domain was verified by ``as_of``.
``usage_works(values_by_scheme)``
    For usage manifests: ``(scheme, value, work_id, kind, status, claim_id, holder_id, share_bp, claim_status,
    decided_at)`` per identifier and live claim, ``decided_at`` in seconds since the epoch (a million lines
    compare floats faster than datetimes).
``current_statuses(keys, purpose, at)``
    The status projection's segment in force at ``at`` for each of ``keys`` (normalized ``scheme:value`` texts)
    that has one: ``(subject, status, compensation, regime, pending_refusal, work_id, title, kind, refusal_id,
    refusal_scope, refusal_purpose, refusal_effective_from)``; and the last refusal event's id, read in the same
    view as the rows.
``snapshot_begin()``
    Called first in a lookup's outermost transaction, so that its reads and the event id it reports agree.

``OrmLookupEngine`` builds the reads with the ORM and runs on any database (SQLite's engine).
``PostgresLookupEngine`` runs the same reads as SQL written out once: building the ORM's statements anew for each
request cost more than running them for a single lookup. ``lookup_engine_for(connection)`` is the one place that
chooses; ``tests/optout/test_lookup_engines.py`` holds both engines to one table of cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.db import connection as default_connection
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    Case,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    Subquery,
    When,
)

from core.lookups import array_literal
from core.prepared import prepared_cursor
from core.sql import sql_literal
from optout.models import Refusal, RefusalEvent, RefusalEventKind, RefusalScope, StatusSegment
from optout.models.status import SubjectType
from registry.models import ClaimStatus, DomainStatus, Identifier

Row = tuple[Any, ...]


class LookupEngine(Protocol):
    """Fetches the rows the lookup's rules read (see the module docstring for their columns)."""

    name: str

    def snapshot_begin(self) -> None: ...

    def works(self, values_by_scheme: Mapping[str, set[str]], as_of: datetime) -> Iterable[Row]: ...

    def refusals(
        self,
        *,
        work_ids: Sequence[int],
        holder_ids: set[int],
        url_hosts: set[str],
        purposes: Sequence[str],
        as_of: datetime,
    ) -> Iterable[Row]: ...

    def usage_works(self, values_by_scheme: Mapping[str, set[str]]) -> Iterable[Row]: ...

    def current_statuses(self, *, keys: Sequence[str], purpose: str, at: datetime) -> tuple[list[Row], int]: ...


def _identifiers(values_by_scheme: Mapping[str, set[str]]) -> Q:
    condition = Q()
    for scheme, values in values_by_scheme.items():
        condition |= Q(scheme=scheme, value__any_of=frozenset(values))
    return condition


# A claim counts (for whose refusals decide, and who is paid) unless it was rejected.
_LIVE_CLAIM = ~Q(work__claims__status=ClaimStatus.REJECTED)


class OrmLookupEngine:
    """The reads built by the ORM: every database, and SQLite's engine."""

    name = "orm"

    def snapshot_begin(self) -> None:
        # SQLite's transactions already read one snapshot (one writer at a time, the database locked for it).
        return None

    def works(self, values_by_scheme: Mapping[str, set[str]], as_of: datetime) -> Iterable[Row]:
        return (
            Identifier.objects.filter(_identifiers(values_by_scheme))
            .annotate(
                live_claim=FilteredRelation("work__claims", condition=_LIVE_CLAIM),
                verified_then=ExpressionWrapper(
                    Q(live_claim__status=ClaimStatus.VERIFIED, live_claim__decided_at__lte=as_of),
                    output_field=BooleanField(),
                ),
            )
            .order_by()
            .values_list(
                "scheme",
                "value",
                "work_id",
                "work__title",
                "work__kind",
                "work__status",
                "live_claim__holder_id",
                "verified_then",
            )
        )

    def refusals(
        self,
        *,
        work_ids: Sequence[int],
        holder_ids: set[int],
        url_hosts: set[str],
        purposes: Sequence[str],
        as_of: datetime,
    ) -> Iterable[Row]:
        condition = Q(pk__in=[])
        if work_ids:
            condition |= Q(scope=RefusalScope.WORK, work__id__any_of=frozenset(work_ids))
        if holder_ids:
            condition |= Q(scope=RefusalScope.CATALOGUE, holder__id__any_of=frozenset(holder_ids))
        if url_hosts:
            condition |= Q(scope=RefusalScope.URL_PREFIX, url_host__any_of=frozenset(url_hosts))
        first_withdrawal = (
            RefusalEvent.objects.filter(refusal=OuterRef("pk"), kind=RefusalEventKind.WITHDRAWN)
            .order_by("pk")
            .values("effective_at")[:1]
        )
        return (
            Refusal.objects.filter(condition, purpose__in=purposes)
            .annotate(
                withdrawn_at=Subquery(first_withdrawal),
                domain_verified=ExpressionWrapper(
                    Q(domain__status=DomainStatus.VERIFIED, domain__verified_at__lte=as_of),
                    output_field=BooleanField(),
                ),
                domain_verified_at=Case(When(domain__status=DomainStatus.VERIFIED, then=F("domain__verified_at"))),
            )
            .order_by()
            .values_list(
                "id",
                "holder_id",
                "scope",
                "purpose",
                "work_id",
                "url_prefix",
                "url_host",
                "effective_from",
                "withdrawn_at",
                "domain_verified",
                "domain_verified_at",
            )
        )

    def usage_works(self, values_by_scheme: Mapping[str, set[str]]) -> Iterable[Row]:
        rows = (
            Identifier.objects.filter(_identifiers(values_by_scheme))
            .annotate(live_claim=FilteredRelation("work__claims", condition=_LIVE_CLAIM))
            .order_by()
            .values_list(
                "scheme",
                "value",
                "work_id",
                "work__kind",
                "work__status",
                "live_claim__id",
                "live_claim__holder_id",
                "live_claim__share_bp",
                "live_claim__status",
                "live_claim__decided_at",
            )
        )
        for *head, decided_at in rows:
            yield (*head, decided_at.timestamp() if decided_at is not None else None)

    def current_statuses(self, *, keys: Sequence[str], purpose: str, at: datetime) -> tuple[list[Row], int]:
        with transaction.atomic():
            last_event_id = RefusalEvent.objects.aggregate(last=Max("id"))["last"] or 0
            if not keys:
                return [], last_event_id
            in_force = Q(valid_from__lte=at) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))
            rows = (
                StatusSegment.objects.filter(in_force, subject_type=SubjectType.KEY, purpose=purpose)
                .filter(subject__in=keys)
                .values_list(
                    "subject",
                    "status",
                    "compensation",
                    "regime",
                    "pending_refusal",
                    "work_id",
                    "work_title",
                    "work_kind",
                    "refusal_id",
                    "refusal__scope",
                    "refusal__purpose",
                    "refusal__effective_from",
                )
            )
            return list(rows), last_event_id


# The same reads for PostgreSQL. Only constant fragments are formatted in; every value is a parameter, the sets
# as one array literal each (see core/lookups.py).
_VERIFIED = sql_literal(ClaimStatus.VERIFIED)
_REJECTED = sql_literal(ClaimStatus.REJECTED)
_WITHDRAWN = sql_literal(RefusalEventKind.WITHDRAWN)
_DOMAIN_VERIFIED = sql_literal(DomainStatus.VERIFIED)

_WORKS_SQL = f"""
    SELECT identifier.scheme, identifier.value, identifier.work_id, work.title, work.kind, work.status,
           live_claim.holder_id,
           (live_claim.decided_at <= %s AND live_claim.status = {_VERIFIED}) AS verified_then
      FROM registry_identifier identifier
      JOIN registry_work work ON work.id = identifier.work_id
      LEFT JOIN registry_ownershipclaim live_claim
             ON live_claim.work_id = work.id AND live_claim.status <> {_REJECTED}
     WHERE {{identifiers}}
"""  # noqa: S608
_REFUSALS_SQL = f"""
    SELECT refusal.id, refusal.holder_id, refusal.scope, refusal.purpose, refusal.work_id, refusal.url_prefix,
           refusal.url_host, refusal.effective_from,
           (SELECT withdrawal.effective_at FROM optout_refusalevent withdrawal
             WHERE withdrawal.kind = {_WITHDRAWN} AND withdrawal.refusal_id = refusal.id
             ORDER BY withdrawal.id LIMIT 1) AS withdrawn_at,
           (domain.status = {_DOMAIN_VERIFIED} AND domain.verified_at <= %s) AS domain_verified,
           CASE WHEN domain.status = {_DOMAIN_VERIFIED} THEN domain.verified_at END AS domain_verified_at
      FROM optout_refusal refusal
      LEFT JOIN registry_verifieddomain domain ON domain.id = refusal.domain_id
     WHERE ({{scopes}}) AND refusal.purpose = ANY(%s::text[])
"""  # noqa: S608
# A chunk asks for tens of thousands of keys, and the ORM's row handling costs more than the index lookups: the
# keys travel as two arrays, joined to the unique (scheme, value) index.
_USAGE_WORKS_SQL = f"""
    SELECT identifier.scheme, identifier.value, work.id, work.kind, work.status, live_claim.id,
           live_claim.holder_id, live_claim.share_bp, live_claim.status,
           EXTRACT(EPOCH FROM live_claim.decided_at)::float8
      FROM unnest(%s::text[], %s::text[]) AS asked(scheme, value)
      JOIN registry_identifier identifier ON identifier.scheme = asked.scheme AND identifier.value = asked.value
      JOIN registry_work work ON work.id = identifier.work_id
      LEFT JOIN registry_ownershipclaim live_claim
             ON live_claim.work_id = work.id AND live_claim.status <> {_REJECTED}
"""  # noqa: S608


# One statement, so one view of the projection and of the event id without a transaction around it. The segments
# carry their work's title and kind; their refusals are read by id (the planner otherwise hashes every refusal to
# join a few). The outer join on the event id returns one row even when no key has a segment.
_CURRENT_STATUSES_SQL = f"""
    WITH segment AS MATERIALIZED (
        SELECT subject, status, compensation, regime, pending_refusal, work_id, work_title, work_kind, refusal_id
          FROM optout_statussegment
         WHERE subject_type = {sql_literal(SubjectType.KEY)} AND subject = ANY(%(keys)s::text[])
           AND purpose = %(purpose)s AND valid_from <= %(at)s AND (valid_to IS NULL OR valid_to > %(at)s)
    )
    SELECT segment.subject, segment.status, segment.compensation, segment.regime, segment.pending_refusal,
           segment.work_id, segment.work_title, segment.work_kind, segment.refusal_id, refusal.scope,
           refusal.purpose, refusal.effective_from, last_event.id
      FROM (SELECT COALESCE(MAX(id), 0) AS id FROM optout_refusalevent) last_event
      LEFT JOIN segment ON true
      LEFT JOIN (SELECT id, scope, purpose, effective_from FROM optout_refusal
                  WHERE id = ANY(ARRAY(SELECT refusal_id FROM segment))) refusal
             ON refusal.id = segment.refusal_id
"""  # noqa: S608


def _pg_array(values: Iterable[Any]) -> str:
    literal, _array_type = array_literal(sorted(values))
    return literal


# Up to this many keys a lookup runs the prepared statement (bench/lookup.py: single lookups).
_PREPARED_KEYS_MAX = 16


class PostgresLookupEngine:
    """The reads as SQL written out once, for PostgreSQL."""

    name = "postgresql"

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Row]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def snapshot_begin(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def works(self, values_by_scheme: Mapping[str, set[str]], as_of: datetime) -> Iterable[Row]:
        schemes = sorted(values_by_scheme)
        identifiers = " OR ".join(
            "(identifier.scheme = %s AND identifier.value = ANY(%s::text[]))" for _scheme in schemes
        )
        params: list[Any] = [as_of]
        for scheme in schemes:
            params += [scheme, _pg_array(values_by_scheme[scheme])]
        return self._fetch(_WORKS_SQL.format(identifiers=identifiers), params)

    def refusals(
        self,
        *,
        work_ids: Sequence[int],
        holder_ids: set[int],
        url_hosts: set[str],
        purposes: Sequence[str],
        as_of: datetime,
    ) -> Iterable[Row]:
        scopes: list[str] = []
        params: list[Any] = [as_of]
        for scope, column, values, cast in (
            (RefusalScope.WORK, "work_id", work_ids, "bigint"),
            (RefusalScope.CATALOGUE, "holder_id", holder_ids, "bigint"),
            (RefusalScope.URL_PREFIX, "url_host", url_hosts, "text"),
        ):
            if values:
                scopes.append(f"(refusal.scope = %s AND refusal.{column} = ANY(%s::{cast}[]))")
                params += [scope.value, _pg_array(values)]
        params.append(_pg_array(purposes))
        return self._fetch(_REFUSALS_SQL.format(scopes=" OR ".join(scopes)), params)

    def usage_works(self, values_by_scheme: Mapping[str, set[str]]) -> Iterable[Row]:
        schemes = [scheme for scheme, values in values_by_scheme.items() for _value in values]
        values = [value for values in values_by_scheme.values() for value in values]
        return self._fetch(_USAGE_WORKS_SQL, [schemes, values])

    def _fetch_prepared(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        """``_fetch`` with the values bound by the server, so that psycopg prepares the statement after a few runs
        (``prepare_threshold``), executed with its generic plan.

        Django binds values in the client, so PostgreSQL plans every statement anew; for a lookup of one key the
        planning cost more than the run. A prepared statement would still be planned anew on each run under
        ``plan_cache_mode = auto`` (it keeps custom plans when their estimates beat the generic one), hence the
        session setting, which touches prepared statements only: Django prepares none of its own.
        """
        self.connection.ensure_connection()
        raw = self.connection.connection
        if not getattr(raw, "registry_generic_plans", False):
            with self.connection.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_generic_plan")
            # A SET inside a transaction that rolls back is undone: then this runs with custom plans, which is
            # slower, never wrong.
            raw.registry_generic_plans = True
        with prepared_cursor(self.connection) as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def current_statuses(self, *, keys: Sequence[str], purpose: str, at: datetime) -> tuple[list[Row], int]:
        params = {"keys": _pg_array(keys), "purpose": purpose, "at": at}
        # Few keys: the prepared statement's generic plan (planning cost more than running). Many: the plan made
        # for the array at hand, which for a thousand keys runs in two thirds of the generic plan's time.
        fetch = self._fetch_prepared if len(keys) <= _PREPARED_KEYS_MAX else self._fetch
        rows = fetch(_CURRENT_STATUSES_SQL, params)
        last_event_id = rows[0][-1]
        return [row[:-1] for row in rows if row[0] is not None], last_event_id


_ORM = OrmLookupEngine()


def lookup_engine_for(connection: BaseDatabaseWrapper = default_connection) -> LookupEngine:
    """The engine for ``connection``'s database: the one place the lookup asks which database it runs on."""
    if connection.vendor == "postgresql":
        return PostgresLookupEngine(connection)
    return _ORM


def lookup_engines(connection: BaseDatabaseWrapper = default_connection) -> list[LookupEngine]:
    """Every engine that runs on ``connection``'s database: the ORM's everywhere, and its own where it has one."""
    own = lookup_engine_for(connection)
    return [_ORM] if own is _ORM else [_ORM, own]
