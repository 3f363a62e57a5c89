"""The admin's add forms for tariffs, settlements and distributions call the services; a refusal is shown on
the form, with what staff typed, and nothing is said to be added. The staff reports are linked from the
admin's index.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from compensation.models import MarketShareDistribution, Settlement, Tariff
from compensation.usage.tariffs import tariff_set
from core.actors import Actor

pytestmark = pytest.mark.django_db


def said(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def form_of(response: Any) -> Any:
    return response.context["adminform"].form


def test_a_refused_tariff_is_shown_on_the_form_with_the_input_kept(staff_client, staff):
    starts = timezone.localtime(timezone.now() + timedelta(days=2)).replace(microsecond=0)
    tariff_set(actor=Actor(user=staff), kind="image", unit="image", rate_krw="10", effective_from=starts)
    body = {
        "kind": "image",
        "unit": "image",
        "rate_krw": "12.5",
        "effective_from_0": starts.strftime("%Y-%m-%d"),
        "effective_from_1": starts.strftime("%H:%M:%S"),
    }

    response = staff_client.post("/admin/compensation/tariff/add/", body, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200  # the form again, not a redirect to the list
    page = response.content.decode()
    assert "added successfully" not in page
    assert not any("added successfully" in message for message in said(response))
    form = form_of(response)
    assert form.errors
    assert "already" in " ".join(str(e) for errors in form.errors.values() for e in errors)
    assert 'value="12.5"' in page  # what staff typed is still there
    assert Tariff.objects.count() == 1


def test_a_tariff_in_the_past_is_refused_on_its_field(staff_client, staff):
    # In force since 60 days ago: history from then on cannot be rewritten (the service refuses, not the model).
    since = timezone.now() - timedelta(days=60)
    tariff_set(actor=Actor(user=staff), kind="text", unit="token", rate_krw="1", effective_from=since)
    past = timezone.localtime(timezone.now() - timedelta(days=30))
    body = {
        "kind": "text",
        "unit": "token",
        "rate_krw": "2",
        "effective_from_0": past.strftime("%Y-%m-%d"),
        "effective_from_1": past.strftime("%H:%M:%S"),
    }

    response = staff_client.post("/admin/compensation/tariff/add/", body, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert list(form_of(response).errors) == ["effective_from"]
    assert "history cannot be rewritten" in str(form_of(response).errors["effective_from"])
    assert not any("added successfully" in message for message in said(response))
    assert Tariff.objects.count() == 1


def test_a_tariff_the_service_accepts_is_added_and_said_so(staff_client, staff):
    starts = timezone.localtime(timezone.now() + timedelta(days=2))
    body = {
        "kind": "image",
        "unit": "image",
        "rate_krw": "12.5",
        "effective_from_0": starts.strftime("%Y-%m-%d"),
        "effective_from_1": starts.strftime("%H:%M:%S"),
    }

    response = staff_client.post("/admin/compensation/tariff/add/", body, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    tariff = Tariff.objects.get()
    assert tariff.created_by == staff
    assert any("added successfully" in message for message in said(response))
    assert "image/image: 12.5 KRW" in " ".join(said(response))  # the saved tariff, as the service wrote it


def test_a_settlement_of_a_period_not_over_is_refused_on_the_form(staff_client):
    today = timezone.localdate()
    body = {"first_day": (today - timedelta(days=3)).isoformat(), "last_day": (today + timedelta(days=3)).isoformat()}

    response = staff_client.post("/admin/compensation/settlement/add/", body, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    form = form_of(response)
    # The service names period_end; the form calls it the last day.
    assert list(form.errors) == ["last_day"]
    assert "once it is over" in str(form.errors["last_day"])
    assert f'value="{body["first_day"]}"' in response.content.decode()
    assert not any("added successfully" in message for message in said(response))
    assert Settlement.objects.count() == 0


def test_a_distribution_within_the_hold_period_is_refused_on_the_form(staff_client):
    month = timezone.localdate().replace(day=1)

    response = staff_client.post(
        "/admin/compensation/marketsharedistribution/add/", {"hold_month": month.isoformat()}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    assert list(form_of(response).errors) == ["hold_month"]
    assert "still within the hold period" in str(form_of(response).errors["hold_month"])
    assert not any("added successfully" in message for message in said(response))
    assert MarketShareDistribution.objects.count() == 0


REPORTS = [
    "/admin/compensation/reports/",
    "/admin/compensation/reports/match-rate/",
    "/admin/compensation/reports/escrow-aging/",
    "/admin/compensation/reports/violations/",
    "/admin/compensation/reports/top/",
]


def test_the_admin_index_links_every_staff_report_and_each_answers(staff_client):
    index = staff_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    assert index.status_code == 200
    page = index.content.decode()
    assert "Reports" in page
    for url in REPORTS:
        assert f'href="{url}"' in page, url
        assert staff_client.get(url, HTTP_ACCEPT_LANGUAGE="en").status_code == 200, url
    # The admin's other pages list them in their navigation too.
    assert 'href="/admin/compensation/reports/top/"' in staff_client.get("/admin/compensation/tariff/").content.decode()


def test_the_reports_are_for_staff_only(owner):
    client = Client()
    client.force_login(owner)
    for url in REPORTS:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
