"""Tariffs: staff set an exact rate per work kind and unit from now on; the rate in force at a use applies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compensation.models import Tariff
from compensation.usage.selectors import tariff_schedule, tariffs_in_force
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.errors import InvalidInput, InvalidState, NotPermitted
from registry.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_staff_set_a_tariff_through_the_api(staff_api, staff):
    response = staff_api.post("/api/v1/tariffs", {"kind": "text", "unit": "token", "rate_krw": "0.0005"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["rate_krw"] == "0.0005"
    tariff = Tariff.objects.get()
    assert (tariff.kind, tariff.unit, tariff.rate_krw) == ("text", "token", Decimal("0.0005"))
    assert tariff.created_by == staff
    event = AuditEvent.objects.get(code="compensation.tariff.set")
    assert event.data["rate_krw"] == "0.0005"
    assert event.object_id == str(tariff.pk)


def test_a_lab_cannot_set_a_tariff(lab_api):
    response = lab_api.post("/api/v1/tariffs", {"kind": "text", "unit": "token", "rate_krw": "0"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Tariff.objects.exists()


def test_a_holder_signed_in_cannot_set_a_tariff(owner, holder):
    with pytest.raises(NotPermitted):
        tariff_set(actor=Actor(user=owner, party=holder), kind="text", unit="token", rate_krw="1")
    assert not Tariff.objects.exists()


def test_anyone_signed_in_reads_the_tariffs(lab_api):
    tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw=Decimal("0.0005"))
    tariff_set(actor=Actor.system(), kind="image", unit="image", rate_krw=Decimal("12.5"))

    everything = lab_api.get("/api/v1/tariffs")
    images = lab_api.get("/api/v1/tariffs?kind=image")

    assert everything.status_code == 200
    assert everything.json()["count"] == 2
    assert [t["rate_krw"] for t in images.json()["results"]] == ["12.5"]


def test_a_tariff_is_backdated_only_before_the_first_of_its_kind_and_unit(staff_api):
    def post(starts):
        return staff_api.post(
            "/api/v1/tariffs",
            {"kind": "text", "unit": "token", "rate_krw": "0.0005", "effective_from": starts.isoformat()},
            format="json",
        )

    # No tariff was ever in force for text/token: starting one in the past prices only what was unpriced.
    assert post(timezone.now() - timedelta(days=10)).status_code == 201
    # Now one was in force: history cannot be rewritten, neither after nor before it.
    for starts in (timezone.now() - timedelta(days=1), timezone.now() - timedelta(days=5)):
        response = post(starts)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "in_the_past"
    assert post(timezone.now() - timedelta(days=20)).status_code == 201
    assert Tariff.objects.count() == 2


def test_a_few_seconds_of_clock_skew_mean_now():
    tariff = tariff_set(
        actor=Actor.system(),
        kind="text",
        unit="token",
        rate_krw="1",
        effective_from=timezone.now() - timedelta(seconds=30),
    )
    assert tariff.effective_from >= timezone.now() - timedelta(seconds=5)


@pytest.mark.parametrize(
    ("rate", "code"),
    [
        pytest.param(0.0005, "invalid", id="float"),
        pytest.param("-1", "invalid", id="negative"),
        pytest.param("0.0000000000001", "invalid", id="thirteen-decimals"),
        pytest.param("1e12", "invalid", id="too-large"),
        pytest.param("NaN", "invalid", id="nan"),
        pytest.param("abc", "invalid", id="not-a-number"),
    ],
)
def test_a_rate_is_an_exact_decimal_in_range(rate, code):
    with pytest.raises(InvalidInput) as refused:
        tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw=rate)
    assert refused.value.code == code
    assert refused.value.field == "rate_krw"


def test_unknown_kind_or_unit_is_refused():
    with pytest.raises(InvalidInput):
        tariff_set(actor=Actor.system(), kind="poetry", unit="token", rate_krw="1")
    with pytest.raises(InvalidInput):
        tariff_set(actor=Actor.system(), kind="text", unit="page", rate_krw="1")


def test_two_tariffs_cannot_start_at_the_same_instant():
    starts = timezone.now() + timedelta(days=1)
    tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="1", effective_from=starts)
    with pytest.raises(InvalidState) as twice:
        tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="2", effective_from=starts)
    assert twice.value.code == "tariff_exists"
    assert Tariff.objects.count() == 1


def test_the_rate_in_force_at_an_instant_applies():
    now = timezone.now()
    first = tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="0.0005")
    second = tariff_set(
        actor=Actor.system(), kind="text", unit="token", rate_krw="0.0007", effective_from=now + timedelta(days=30)
    )
    images = tariff_set(actor=Actor.system(), kind="image", unit="image", rate_krw="10")
    pairs = [("text", "token"), ("image", "image"), ("audio", "second")]

    before = tariffs_in_force(pairs=pairs, at=now - timedelta(days=1))
    during = tariffs_in_force(pairs=pairs, at=now + timedelta(days=29))
    after = tariffs_in_force(pairs=pairs, at=now + timedelta(days=31))

    assert before == {}
    assert during == {("text", "token"): first, ("image", "image"): images}
    assert after == {("text", "token"): second, ("image", "image"): images}
    # At the instant a tariff starts, it is in force.
    assert tariffs_in_force(pairs=pairs, at=second.effective_from)[("text", "token")] == second


def test_a_schedule_prices_many_instants_from_one_query(django_assert_num_queries):
    now = timezone.now()
    first = tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="0.0005")
    second = tariff_set(
        actor=Actor.system(), kind="text", unit="token", rate_krw="0.0007", effective_from=now + timedelta(days=30)
    )

    with django_assert_num_queries(1):
        schedule = tariff_schedule(pairs=[("text", "token"), ("audio", "second")])

    assert schedule.at("text", "token", now - timedelta(days=1)) is None
    assert schedule.at("text", "token", first.effective_from) == first
    assert schedule.at("text", "token", now + timedelta(days=29)) == first
    assert schedule.at("text", "token", second.effective_from) == second
    assert schedule.at("audio", "second", now) is None
