"""Security headers: a strict Content-Security-Policy, HSTS, and ``manage.py check --deploy`` clean in production."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import WorkFactory

ROOT = Path(__file__).resolve().parents[1]

# Templates of the API documentation pages have their own policy (CONTENT_SECURITY_POLICY_API_DOCS).
DOCS_TEMPLATES = {"registry/templates/registry/api_redoc.html", "registry/templates/registry/api_swagger.html"}
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+=", re.I), "an inline event handler"),
]


def _directives(policy: str) -> dict[str, str]:
    directives = {}
    for part in policy.split(";"):
        name, _sep, value = part.strip().partition(" ")
        if name:
            directives[name] = value
    return directives


def _production_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"REGISTRY_TESTING", "DEBUG"}}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        RECEIPT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        PAYOUT_DATA_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        ALLOWED_HOSTS="registry.example.kr",
        DATA_DIR=str(tmp_path),
    )
    return env


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_send_hsts_for_a_year(tmp_path):
    probe = "from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["31536000", "True"]


@pytest.mark.django_db
def test_https_answers_carry_hsts(settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    response = Client().get("/", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/search?q=isbn:9788936434021", "/admin/login/"])
def test_pages_carry_a_strict_content_security_policy(path):
    response = Client().get(path)

    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_a_works_public_page_needs_nothing_inline(holder):

    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")])

    response = Client().get(f"/works/{work.pk}")

    assert response.status_code == 200
    html = response.content.decode()
    for pattern, what in INLINE:
        assert not pattern.search(html), what
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_api_docs_have_their_own_policy_and_no_inline_script(db, path):
    response = APIClient().get(path)

    assert response.status_code == 200
    policy = _directives(response["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert not INLINE[0][0].search(response.content.decode())


def test_no_template_needs_inline_script_or_style():
    """The strict policy blocks anything inline; a template that adds some would break in the browser."""
    offending: list[str] = []
    for app in ("portal", "optout", "registry", "compensation"):
        for template in (ROOT / app / "templates").rglob("*.html"):
            relative = str(template.relative_to(ROOT))
            if relative in DOCS_TEMPLATES:
                continue
            text = template.read_text()
            offending.extend(f"{relative}: {what}" for pattern, what in INLINE if pattern.search(text))

    assert offending == []


@pytest.mark.django_db
def test_the_policy_can_be_report_only_or_off(settings: Any):
    settings.CSP_REPORT_ONLY = True
    report_only = Client().get("/")
    settings.CSP_REPORT_ONLY = False
    settings.CONTENT_SECURITY_POLICY = ""
    off = Client().get("/")

    assert "Content-Security-Policy" not in report_only
    assert report_only["Content-Security-Policy-Report-Only"].startswith("default-src 'self'")
    assert "Content-Security-Policy" not in off
