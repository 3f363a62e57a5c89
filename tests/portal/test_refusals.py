"""Refusals and domains through the portal: file, withdraw, history; guided domain verification."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from optout.models import Refusal, RefusalEvent
from registry.models import DomainStatus, VerifiedDomain
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db


def test_refusing_selected_works_files_one_refusal_each(owner_client, holder, book):
    other = WorkFactory(holder=holder, identifiers=[("isbn", "9780306406157")])
    page = owner_client.get("/dashboard/refusals/new/", {"works": [book.pk]}).content.decode()
    assert re.search(rf'value="{book.pk}"[^>]*checked', page)
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {"scope": "work", "works": [book.pk, other.pk], "purpose": "train-ai", "start": "now"},
    )
    assert response.status_code == 302
    assert sorted(Refusal.objects.values_list("work_id", flat=True)) == sorted([book.pk, other.pk])
    body = owner_client.get("/dashboard/refusals/").content.decode()
    assert "In force" in body  # the book's claim is verified
    assert "Awaiting verification" in body  # the other one's is not


def test_refusing_a_work_of_someone_else_is_impossible(owner_client, other_holder):
    theirs = WorkFactory(holder=other_holder, identifiers=[("isbn", "9780306406157")])
    response = owner_client.post(
        "/dashboard/refusals/new/", {"scope": "work", "works": [theirs.pk], "purpose": "train-ai", "start": "now"}
    )
    assert response.status_code == 200
    assert not Refusal.objects.exists()


def test_a_catalogue_refusal_from_a_later_date_is_scheduled(owner_client, holder):
    starts = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {"scope": "catalogue", "purpose": "train-genai", "start": "later", "effective_from": starts},
    )
    assert response.status_code == 302
    refusal = Refusal.objects.get()
    assert refusal.effective_from > timezone.now() + timedelta(days=2)
    assert "Scheduled" in owner_client.get("/dashboard/refusals/").content.decode()


def test_a_refusal_in_the_past_is_refused_on_its_field_keeping_the_input(owner_client):
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {"scope": "catalogue", "purpose": "train-ai", "start": "later", "effective_from": "2020-01-01T00:00"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="id_effective_from_error"' in body
    assert 'value="2020-01-01T00:00"' in body
    assert not Refusal.objects.exists()


def test_a_url_prefix_needs_a_domain_of_the_holder(owner_client):
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {"scope": "url_prefix", "url_prefix": "https://news.example.kr/2026/", "purpose": "train-ai", "start": "now"},
    )
    assert 'id="id_url_prefix_error"' in response.content.decode()


def test_withdrawing_says_what_changes_and_needs_confirmation(owner_client, holder, book):
    owner_client.post(
        "/dashboard/refusals/new/", {"scope": "work", "works": [book.pk], "purpose": "train-ai", "start": "now"}
    )
    refusal = Refusal.objects.get()
    page = owner_client.get(f"/dashboard/refusals/{refusal.pk}/withdraw/").content.decode()
    assert "AI labs may use this work for training" in page
    response = owner_client.post(f"/dashboard/refusals/{refusal.pk}/withdraw/", {"start": "now"})
    assert response.status_code == 200
    assert 'id="id_confirm_error"' in response.content.decode()
    assert not RefusalEvent.objects.filter(kind="withdrawn").exists()
    response = owner_client.post(f"/dashboard/refusals/{refusal.pk}/withdraw/", {"start": "now", "confirm": "on"})
    assert response.status_code == 302
    assert RefusalEvent.objects.filter(refusal=refusal, kind="withdrawn").exists()
    work_page = owner_client.get(f"/dashboard/works/{book.pk}/").content.decode()
    assert "Withdrawn" in work_page
    assert "Took effect" in work_page


def test_a_domain_is_verified_by_its_well_known_file_and_then_offers_its_signal_files(owner_client, holder, web_root):
    origin, root = web_root
    response = owner_client.post("/dashboard/domains/", {"origin": origin, "method": "file"})
    assert response.status_code == 302
    domain = VerifiedDomain.objects.get()
    page = owner_client.get(response["Location"]).content.decode()
    assert f"{origin}/.well-known/optout-registry.txt" in page
    assert domain.token in page
    response = owner_client.post(f"/dashboard/domains/{domain.pk}/check/", follow=True)
    assert "Not verified yet" in response.content.decode()
    proof = owner_client.get(f"/dashboard/domains/{domain.pk}/optout-registry.txt").content
    (root / ".well-known" / "optout-registry.txt").write_bytes(proof)
    response = owner_client.post(f"/dashboard/domains/{domain.pk}/check/", follow=True)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {"scope": "url_prefix", "url_prefix": f"{origin}/news/", "purpose": "train-ai", "start": "now"},
    )
    assert response.status_code == 302
    robots = owner_client.get(f"/dashboard/domains/{domain.pk}/robots.txt").content.decode()
    assert "Content-Usage: /news/ train-ai=n" in robots
    tdmrep = owner_client.get(f"/dashboard/domains/{domain.pk}/tdmrep.json").json()
    assert tdmrep == [{"location": "/news/*", "tdm-reservation": 1}]


def test_dns_instructions_show_the_exact_record(owner_client):
    owner_client.post("/dashboard/domains/", {"origin": "https://news.example.kr", "method": "dns"})
    domain = VerifiedDomain.objects.get()
    page = owner_client.get(f"/dashboard/domains/{domain.pk}/").content.decode()
    assert "_optout-registry.news.example.kr" in page
    assert f"optout-registry-verification={domain.token}" in page
