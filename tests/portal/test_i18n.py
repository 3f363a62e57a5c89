"""Korean and English: Accept-Language, the language switcher, and amounts formatted for the language."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import translation

pytestmark = pytest.mark.django_db


def test_accept_language_chooses_korean_or_english():
    korean = Client(HTTP_ACCEPT_LANGUAGE="ko-KR,ko;q=0.9").get("/accounts/signup/").content.decode()
    assert '<html lang="ko">' in korean
    assert "회원가입" in korean
    assert "비밀번호 확인" in korean
    english = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").get("/accounts/signup/").content.decode()
    assert '<html lang="en">' in english
    assert "Password again" in english


def test_the_language_switcher_keeps_the_page_and_remembers_the_choice():
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = client.post("/i18n/setlang/", {"language": "ko", "next": "/search?q=9788936434021"})
    assert response.status_code == 302
    assert response["Location"] == "/search?q=9788936434021"
    assert "저작물의 AI 학습 허용 여부 확인" in client.get("/search").content.decode()


def test_form_errors_are_translated(owner_client):
    response = owner_client.post(
        "/dashboard/works/new/",
        {
            "title": "",
            "kind": "text",
            "share_percent": "100",
            "identifiers-TOTAL_FORMS": "0",
            "identifiers-INITIAL_FORMS": "0",
        },
        HTTP_ACCEPT_LANGUAGE="ko",
    )
    assert "아래 표시된 항목을 고쳐 주세요." in response.content.decode()


@pytest.mark.parametrize(("language", "expected"), [("ko", "1,234,567원"), ("en", "₩1,234,567")])
def test_won_amounts_follow_the_language(language, expected):
    with translation.override(language):
        rendered = Template("{% load portal %}{{ amount|won }} {{ micro|micro_won }}").render(
            Context({"amount": 1234567, "micro": 1_234_567_999_999})
        )
    assert rendered == f"{expected} {expected}"


@pytest.mark.parametrize("app", ["portal", "registry", "optout", "compensation", "core"])
def test_every_string_has_a_korean_translation(app):
    from pathlib import Path

    po = (Path(__file__).resolve().parents[2] / f"{app}/locale/ko/LC_MESSAGES/django.po").read_text()
    entries = po.split("\n\n")[1:]
    untranslated = [e for e in entries if e.rstrip().endswith('msgstr ""') or 'msgstr[0] ""' in e]
    assert untranslated == []
    assert "#, fuzzy" not in po
