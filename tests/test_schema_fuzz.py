"""Schemathesis against the API's own OpenAPI schema (``/api/v1/schema/``), through the WSGI application.

Every generated request is sent four times: with a rights holder's key, a lab's key, a staff key and
anonymously. It fails on any 5xx and on any answer the schema does not document (status code, content type,
headers, body). The data seeded first gives the fuzzer real objects to reach: generated ids are mapped onto
the seeded works, claims, refusals, domains, imports, keys, manifests, settlements, statements, invoices and
exports most of the time, and kept as generated otherwise (unknown ids must answer a documented 404).

Select it with ``-m fuzz``. Generated examples per operation: ``--fuzz-examples N`` or ``FUZZ_EXAMPLES``
(default 10); ``FUZZ_SEED`` fixes the seed (default 12, so CI runs the same cases each time).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import hypothesis
import pytest
import schemathesis
import time_machine
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.actors import Actor
from registry.errors import DomainCheckFailed
from registry.models import ApiKey

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

SEOUL = ZoneInfo("Asia/Seoul")
READS_OF_SEEDED_OBJECTS = {
    f"GET /api/v1/{path}"
    for path in (
        "works/{work_id}",
        "works/{work_id}/files/{file_id}",
        "imports/{import_id}",
        "imports/{import_id}/errors",
        "domains/{domain_id}",
        "usage-manifests/{manifest_pk}",
        "usage-manifests/{manifest_pk}/outcomes",
        "settlements/{settlement_pk}",
        "statements/{statement_pk}",
        "statements/{statement_pk}/lines",
        "invoices/{invoice_pk}",
        "invoices/{invoice_pk}/lines",
        "exports/{export_pk}",
    )
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz_examples(config: pytest.Config) -> int:
    option = config.getoption("--fuzz-examples", default=None)
    return int(option if option is not None else os.environ.get("FUZZ_EXAMPLES", "10"))


class InTestWSGIHandler(WSGIHandler):
    """Django's WSGI application, except that a request leaves the database connection open, as Django's test
    client does: closing it would end the test's transaction (and, on PostgreSQL, the connection under it)."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request_started.disconnect(close_old_connections)
        try:
            response = super().__call__(environ, start_response)
        finally:
            request_started.connect(close_old_connections)
        close = response.close

        def close_keeping_the_connection() -> None:
            request_finished.disconnect(close_old_connections)
            try:
                close()
            finally:
                request_finished.connect(close_old_connections)

        response.close = close_keeping_the_connection  # type: ignore[method-assign]
        return response


@dataclass
class World:
    """The seeded objects: the callers' Authorization headers and, per path or body name, real ids."""

    roles: dict[str, str | None]
    ids: dict[str, list[int]]
    role_keys: list[int] = field(default_factory=list)

    def real_id(self, name: str, generated: Any) -> Any:
        """A seeded id for most generated integers; one value in (n + 1) stays as generated."""
        known = self.ids.get(name)
        if not known or not isinstance(generated, int) or isinstance(generated, bool):
            return generated
        index = generated % (len(known) + 1)
        return known[index] if index < len(known) else generated


def _upload(name: str, content: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


@pytest.fixture
def fuzz_world(
    holder: Any,
    other_holder: Any,
    lab: Any,
    staff: Any,
    django_capture_on_commit_callbacks: Any,
) -> World:
    """Works, claims, refusals, a domain, an import, a processed manifest, a settled month and an export."""
    from compensation.documents.exports import ExportDocument
    from compensation.documents.services import export_request
    from compensation.models import Export, Invoice, Statement
    from compensation.settlement.services import settlement_create
    from compensation.usage.tariffs import tariff_set
    from optout.services import refusal_file, refusal_withdraw
    from registry.imports import work_import_create
    from registry.services import apikey_create, claim_file, claim_verify, domain_add, work_draft_build, work_register
    from registry.work_files import work_file_create

    def register(party: Any, isbn: str, *, share_bp: int = 10_000) -> Any:
        draft = work_draft_build(
            title=f"Work {isbn}", kind="text", identifiers=[{"scheme": "isbn", "value": isbn}], share_bp=share_bp
        )
        work, _claim = work_register(actor=Actor(party=party, is_system=True), holder=party, draft=draft)
        return work

    keys = {
        "holder": apikey_create(actor=Actor.system(), party=holder, scopes=["works:write", "lookup"])[1],
        "lab": apikey_create(actor=Actor.system(), party=lab, scopes=["lookup", "usage:write"])[1],
        "staff": apikey_create(actor=Actor.system(), staff_user=staff, scopes=["staff"])[1],
    }
    staff_actor = Actor(user=staff)
    holder_actor = Actor(party=holder, is_system=True)
    # Uses in January, settled in February: the statements, invoices and exports of a closed month.
    january = time_machine.travel(datetime(2026, 1, 5, 9, tzinfo=SEOUL), tick=False)
    with january, django_capture_on_commit_callbacks(execute=True):
        tariff_set(
            actor=staff_actor,
            kind="text",
            unit="token",
            rate_krw=Decimal("0.0005"),
            effective_from=timezone.now() - timedelta(days=4),
        )
        book = register(holder, "9788936434021")
        for claim in book.claims.filter(status="pending"):
            claim_verify(actor=staff_actor, claim=claim)
        co_owned = register(holder, "9780306406157", share_bp=6000)
        claim_file(
            actor=Actor(party=other_holder, is_system=True),
            work=co_owned,
            holder=other_holder,
            share_bp=4000,
            valid_from=None,
        )
        pending = register(holder, "9780262033848")
        refusal = refusal_file(actor=holder_actor, holder=holder, scope="work", work=book, purposes=["train-genai"])
        withdrawn = refusal_file(actor=holder_actor, holder=holder, scope="work", work=pending, purposes=["train-ai"])
        refusal_withdraw(actor=holder_actor, refusal=withdrawn)
        domain = domain_add(actor=holder_actor, holder=holder, origin="https://hangang.example", method="dns")
        work_import = work_import_create(
            actor=holder_actor,
            holder=holder,
            file=_upload("works.csv", b"title,kind,isbn\nNovel,text,9791190090018\nBad,text,123\n"),
            filename="works.csv",
        )
        # A fingerprinted file on each work, so that a generated (work_id, file_id) pair often names a real one.
        work_files = [
            work_file_create(
                actor=holder_actor,
                holder=holder,
                work=work,
                file=_upload("a.txt", f"{work.pk}".encode()),
                filename="a.txt",
            ).pk
            for work in (book, co_owned, pending)
        ]
        used_at = (timezone.now() - timedelta(hours=2)).isoformat()
        lab_client = APIClient()
        lab_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {keys['lab']}")
        submitted = lab_client.post(
            "/api/v1/usage-manifests",
            {
                "manifest_id": "fuzz-1",
                "model": "hangul-7b",
                "purpose": "train-genai",
                "lines": [
                    {"scheme": "isbn", "value": isbn, "units": 1000, "unit": "token", "used_at": used_at}
                    for isbn in ("9788936434021", "9780306406157", "9780262033848", "9780141036144")
                ],
            },
            format="json",
        )
        assert submitted.status_code == 202, submitted.content
    with time_machine.travel(datetime(2026, 2, 3, 9, tzinfo=SEOUL), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            settlement, _created = settlement_create(
                actor=staff_actor, first_day=date(2026, 1, 1), last_day=date(2026, 1, 31)
            )
        statements = list(Statement.objects.values_list("pk", flat=True))
        invoices = list(Invoice.objects.values_list("pk", flat=True))
        assert statements, "the seeded month settles into statements"
        assert invoices, "the seeded month settles into invoices"
        with django_capture_on_commit_callbacks(execute=True):
            for pk in statements[:1]:
                export_request(
                    actor=staff_actor, document=ExportDocument.STATEMENT, object_id=pk, fmt="csv", language="en"
                )

    exports = list(Export.objects.values_list("pk", flat=True))
    assert exports, "the seeded statement has an export"
    spare_keys = [apikey_create(actor=Actor.system(), party=p, scopes=["lookup"])[0].pk for p in (holder, lab)]
    works = [book.pk, co_owned.pk, pending.pk]
    from registry.models import OwnershipClaim

    return World(
        roles={**{role: f"Api-Key {raw}" for role, raw in keys.items()}, "anonymous": None},
        ids={
            "work_id": works,
            "work": works,
            "claim_id": list(OwnershipClaim.objects.values_list("pk", flat=True)),
            "refusal_id": [refusal.pk, withdrawn.pk],
            "domain_id": [domain.pk],
            "import_id": [work_import.pk],
            "file_id": work_files,
            "key_id": spare_keys,
            "manifest_pk": [submitted.json()["id"]],
            "settlement_pk": [settlement.pk],
            "settlement": [settlement.pk],
            "statement_pk": statements,
            "invoice_pk": invoices,
            "export_pk": exports,
            "party": [holder.pk, lab.pk],
        },
        role_keys=list(ApiKey.objects.exclude(pk__in=spare_keys).values_list("pk", flat=True)),
    )


@pytest.fixture
def api_schema(request: pytest.FixtureRequest) -> Any:
    """The schema as the application serves it, with the WSGI application as its transport."""
    config = SchemathesisConfig.from_dict({"generation": {"database": "none"}})
    return schemathesis.openapi.from_wsgi("/api/v1/schema/", InTestWSGIHandler(), config=config)


@pytest.fixture
def server_errors() -> Iterator[list[str]]:
    """Tracebacks of the exceptions that became 500s, to show with the failing case."""
    found: list[str] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        found.append(traceback.format_exc())

    got_request_exception.connect(record)
    yield found
    got_request_exception.disconnect(record)


def _no_network(*, method: str, origin: str, host: str, token: str, resolver: Any = None) -> None:
    # Domain checks would resolve and fetch whatever origin the fuzzer made up: this test stays on the machine.
    raise DomainCheckFailed("fuzzing: no network", code="fetch_failed")


# Each operation is a Hypothesis test of its own, run inside this one pytest test over one seeded database:
# seeding per operation would cost a minute, and Schemathesis' lazy pytest loader (from_fixture) fails under
# pytest 9.2 (it sets Function._nodeid). Failures are collected per operation and reported together.
def test_api_answers_as_documented(
    request: pytest.FixtureRequest,
    api_schema: Any,
    fuzz_world: World,
    server_errors: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    examples = fuzz_examples(request.config)
    seed = int(os.environ.get("FUZZ_SEED", "12"))
    sent = {"cases": 0, "requests": 0}
    failures: list[str] = []
    reached: set[str] = set()

    def send(case: Any) -> None:
        sent["cases"] += 1
        for name, value in list(case.path_parameters.items()):
            case.path_parameters[name] = fuzz_world.real_id(name, value)
        for name, value in list((case.query or {}).items()):
            case.query[name] = fuzz_world.real_id(name, value)
        if isinstance(case.body, dict):
            for name, value in list(case.body.items()):
                case.body[name] = fuzz_world.real_id(name, value)
        for role, authorization in fuzz_world.roles.items():
            # Each caller starts with its own rate-limit budget and its key, whatever the previous case revoked.
            cache.clear()
            ApiKey.objects.filter(pk__in=fuzz_world.role_keys).update(revoked_at=None)
            if authorization is None:
                case.headers.pop("Authorization", None)
            else:
                case.headers["Authorization"] = authorization
            server_errors.clear()
            sent["requests"] += 1
            try:
                # Work queued after commit (manifests, imports, settlements, exports) runs too, as a worker would.
                with django_capture_on_commit_callbacks(execute=True):
                    response = case.call_and_validate(checks=CHECKS)
            except BaseException as exc:
                exc.add_note(f"As {role}.")
                for found in server_errors:
                    exc.add_note(found)
                raise
            if response.status_code < 300 and case.path_parameters:
                reached.add(case.operation.label)

    with mock.patch("registry.services.domain_proof_check", _no_network):
        for result in api_schema.get_all_operations():
            operation = result.ok()
            strategy = st.one_of(
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
            )
            run = hypothesis.seed(seed)(
                hypothesis.settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(hypothesis.HealthCheck),
                    report_multiple_bugs=False,
                )(hypothesis.given(case=strategy)(send))
            )
            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports its findings as a group
                failures.append(f"{operation.label}:\n{exc}\n" + "\n".join(getattr(exc, "__notes__", [])))
    print(f"Schemathesis: {sent['cases']} cases, {sent['requests']} requests, {len(failures)} failing operations")
    assert not failures, "\n\n".join(failures)
    # The seeded objects were reached, not only unknown ids: each of these answered 2xx at least once.
    assert READS_OF_SEEDED_OBJECTS - reached == set()
