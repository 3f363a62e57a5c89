"""A use recorded unpriced for an identifier nobody had registered is priced when a work registers it and a
tariff of that work's kind covers the use; otherwise it waits, as that kind, for such a tariff."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from compensation.models import ManifestLine, Outcome
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from tests.compensation.helpers import manifest_body
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db

ISBN = "9780306406157"


def _report(lab_api: Any, capture: Any, manifest_id: str) -> ManifestLine:
    line = {"scheme": "isbn", "value": ISBN, "units": "10", "unit": "image", "used_at": timezone.now().isoformat()}
    with capture(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests", manifest_body([line], manifest_id=manifest_id), format="json"
        )
    assert response.status_code == 202, response.content
    return ManifestLine.objects.get(manifest_id=response.json()["id"])


def _set_tariff(staff: Any, capture: Any, kind: str, days_ago: int) -> None:
    with capture(execute=True):
        tariff_set(
            actor=Actor(user=staff),
            kind=kind,
            unit="image",
            rate_krw=Decimal("2"),
            effective_from=timezone.now() - timedelta(days=days_ago),
        )


def test_a_registration_prices_the_uses_its_identifier_had_unpriced(
    lab_api, holder, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _set_tariff(staff, capture, "image", 30)  # images are priced; an ISBN alone is taken as text
    line = _report(lab_api, capture, "before-registration")
    assert (line.outcome, line.kind, line.tariff_id) == (Outcome.UNPRICED, "text", None)

    with capture(execute=True):
        work = WorkFactory(holder=holder, identifiers=[("isbn", ISBN)], kind="image")
    line.refresh_from_db()
    assert (line.work_id, line.kind, line.outcome) == (work.pk, "image", Outcome.SHARE_UNCLAIMED)
    assert line.amount_micro == 20_000_000
    assert line.held_micro == 20_000_000


def test_a_registration_without_a_tariff_of_its_kind_leaves_the_use_waiting_as_that_kind(
    lab_api, holder, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    line = _report(lab_api, capture, "no-tariff-yet")
    with capture(execute=True):
        work = WorkFactory(holder=holder, identifiers=[("isbn", ISBN)], kind="image")
    line.refresh_from_db()
    assert (line.work_id, line.kind, line.outcome, line.amount_micro) == (work.pk, "image", Outcome.UNPRICED, None)

    # A tariff for images, backdated before the use, now finds it.
    _set_tariff(staff, capture, "image", 30)
    line.refresh_from_db()
    assert (line.outcome, line.amount_micro) == (Outcome.SHARE_UNCLAIMED, 20_000_000)
