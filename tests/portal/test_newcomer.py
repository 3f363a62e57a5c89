"""What a newcomer tripped on in the portal: the claim form nobody linked to, a scheduled refusal's
timeline told in the wrong tense, and the English name of the registry on Korean pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from optout.models import Refusal
from registry.models import OwnershipClaim, WorkImport
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db

THEIR_ISBN = "9780306406157"


@pytest.fixture
def theirs(other_holder: Any) -> Any:
    """A work another rights holder registered."""
    return WorkFactory(holder=other_holder, identifiers=[("isbn", THEIR_ISBN)])


def _claim_href(work: Any) -> str:
    return f'href="/dashboard/works/{work.pk}/claim/"'


# --- The claim form is where a holder meets someone else's work ----------------------------------------


def test_an_import_row_on_a_taken_identifier_links_to_the_claim_form(
    owner_client, holder, theirs, django_capture_on_commit_callbacks
):
    csv = f"title,kind,identifiers\r\nMine too,text,isbn:{THEIR_ISBN}\r\n".encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/dashboard/imports/new/", {"file": SimpleUploadedFile("works.csv", csv, "text/csv")}
        )
    assert response.status_code == 302
    assert WorkImport.objects.get().rows_failed == 1
    page = owner_client.get(response["Location"]).content.decode()
    assert "claim that work instead" in page
    assert _claim_href(theirs) in page
    # The link leads to a form that files the claim.
    assert owner_client.get(f"/dashboard/works/{theirs.pk}/claim/").status_code == 200
    response = owner_client.post(f"/dashboard/works/{theirs.pk}/claim/", {"share_percent": "50"})
    assert response.status_code == 302
    claim = OwnershipClaim.objects.get(work=theirs, holder=holder)
    assert (claim.share_bp, claim.status) == (5000, "pending")
    # Now that the holder has a claim, the same error points to their own page of the work instead.
    page = owner_client.get(f"/dashboard/imports/{WorkImport.objects.get().pk}/").content.decode()
    assert _claim_href(theirs) not in page
    assert f'href="/dashboard/works/{theirs.pk}/"' in page


def test_the_public_page_offers_the_claim_form_to_a_holder_who_has_no_claim(owner_client, theirs, book):
    page = owner_client.get(f"/works/{theirs.pk}").content.decode()
    assert _claim_href(theirs) in page
    own = owner_client.get(f"/works/{book.pk}").content.decode()
    assert _claim_href(book) not in own  # the holder already owns it


def test_the_public_page_offers_no_claim_to_a_lab_and_sign_in_to_anyone(lab_client, theirs):
    assert "/claim/" not in lab_client.get(f"/works/{theirs.pk}").content.decode()
    anonymous = Client().get(f"/works/{theirs.pk}").content.decode()
    assert f'href="/accounts/login/?next=/dashboard/works/{theirs.pk}/claim/"' in anonymous


def test_search_and_the_home_page_offer_the_claim_form(owner_client, theirs, book):
    search = owner_client.get("/search", {"q": THEIR_ISBN}).content.decode()
    assert _claim_href(theirs) in search
    assert _claim_href(book) not in owner_client.get("/search", {"q": "9788936434021"}).content.decode()
    home = owner_client.get("/").content.decode()
    assert _claim_href(theirs) in home
    assert _claim_href(book) not in home
    assert "/claim/" not in Client().get("/").content.decode()


def test_a_taken_identifier_typed_in_the_form_offers_the_claim_form(owner_client, theirs, book):
    answer = owner_client.get("/dashboard/works/check-identifier", {"scheme": "isbn", "value": THEIR_ISBN}).json()
    assert (answer["taken"], answer["claim_url"]) == (True, f"/dashboard/works/{theirs.pk}/claim/")
    own = owner_client.get("/dashboard/works/check-identifier", {"scheme": "isbn", "value": "9788936434021"}).json()
    assert own["taken"] is True
    assert "claim_url" not in own


# --- A refusal's timeline in the right tense ----------------------------------------------------------


def _timeline(html: str) -> list[tuple[str, datetime]]:
    block = re.search(r'<ol class="timeline">(.*?)</ol>', html, re.S)
    assert block, html
    return [
        (label, datetime.fromisoformat(at))
        for label, at in re.findall(r'<strong>([^<]+)</strong> <time datetime="([^"]+)">', block.group(1))
    ]


def _pages(client: Client, work: Any) -> list[str]:
    return [client.get(url).content.decode() for url in ("/dashboard/refusals/", f"/dashboard/works/{work.pk}/")]


def test_a_scheduled_refusal_was_filed_now_and_takes_effect_later(owner_client, book):
    starts = (timezone.localtime() + timedelta(days=3)).replace(second=0, microsecond=0)
    before = timezone.now()
    response = owner_client.post(
        "/dashboard/refusals/new/",
        {
            "scope": "work",
            "works": [book.pk],
            "purpose": "train-ai",
            "start": "later",
            "effective_from": starts.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    after = timezone.now()
    for page in _pages(owner_client, book):
        assert "Took effect" not in page
        (filed_label, filed_at), (effective_label, effective_at) = _timeline(page)
        assert (filed_label, effective_label) == ("Filed", "Takes effect")
        assert before <= filed_at <= after
        assert effective_at == starts
        assert "Scheduled" in page


def test_a_refusal_in_force_took_effect_and_a_scheduled_withdrawal_is_to_come(owner_client, book):
    owner_client.post(
        "/dashboard/refusals/new/", {"scope": "work", "works": [book.pk], "purpose": "train-ai", "start": "now"}
    )
    refusal = Refusal.objects.get()
    for page in _pages(owner_client, book):
        assert [label for label, _at in _timeline(page)] == ["Filed", "Took effect"]
    ends = (timezone.localtime() + timedelta(days=2)).replace(second=0, microsecond=0)
    response = owner_client.post(
        f"/dashboard/refusals/{refusal.pk}/withdraw/",
        {"start": "later", "effective_at": ends.strftime("%Y-%m-%dT%H:%M"), "confirm": "on"},
    )
    assert response.status_code == 302
    for page in _pages(owner_client, book):
        timeline = _timeline(page)
        assert [label for label, _at in timeline] == ["Filed", "Took effect", "To be withdrawn"]
        assert timeline[-1][1] == ends


def test_a_refusal_awaiting_verification_shows_the_start_asked_for(owner_client, holder):
    work = WorkFactory(holder=holder, identifiers=[("isbn", THEIR_ISBN)])  # its claim is pending
    starts = (timezone.localtime() + timedelta(days=5)).replace(second=0, microsecond=0)
    owner_client.post(
        "/dashboard/refusals/new/",
        {
            "scope": "work",
            "works": [work.pk],
            "purpose": "train-ai",
            "start": "later",
            "effective_from": starts.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    for page in _pages(owner_client, work):
        timeline = _timeline(page)
        assert [label for label, _at in timeline] == ["Filed", "Requested start"]
        assert timeline[1][1] == starts
        assert "Awaiting verification" in page


# --- The registry's name in each language --------------------------------------------------------------


def test_the_korean_pages_carry_the_korean_name_and_the_english_ones_the_english_name(settings, theirs):
    korean = Client(HTTP_ACCEPT_LANGUAGE="ko").get("/").content.decode()
    assert "<h1>AI 학습 거부 등록부</h1>" in korean
    assert "AI-training opt-out registry" not in korean
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/").content.decode()
    assert "<h1>AI-training opt-out registry</h1>" in english
    assert "AI 학습 거부 등록부" not in english
    # A work's public page, outside the portal's templates, follows the same rule.
    assert "AI 학습 거부 등록부" in Client(HTTP_ACCEPT_LANGUAGE="ko").get(f"/works/{theirs.pk}").content.decode()
    settings.REGISTRY_NAME, settings.REGISTRY_NAME_KO = "Copyright Registry", "저작권 등록부"
    assert "<h1>저작권 등록부</h1>" in Client(HTTP_ACCEPT_LANGUAGE="ko").get("/").content.decode()
    assert "<h1>Copyright Registry</h1>" in Client(HTTP_ACCEPT_LANGUAGE="en").get("/").content.decode()


def test_mail_carries_the_name_in_the_language_it_is_written_in(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = Client(HTTP_ACCEPT_LANGUAGE="ko").post(
            "/accounts/signup/",
            {"email": "new@holder.example", "password1": "correct-horse-battery", "password2": "correct-horse-battery"},
        )
    assert response.status_code == 302
    assert "AI 학습 거부 등록부" in mailoutbox[-1].body
