"""The API answers every error in its JSON shape, never an HTML page: 500s, too-large bodies, unknown paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _assert_json_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.fixture
def small_bodies(settings: Any) -> int:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    return 4096


@pytest.mark.parametrize("path", ["/api/v1/works", "/api/v1/lookup", "/api/v1/receipts/verify", "/api/v1/claims"])
def test_a_json_body_over_the_limit_is_a_json_413(holder_api, small_bodies, path):
    holder_api.raise_request_exception = False
    body = b'{"title": "' + b"x" * (small_bodies * 2) + b'"}'

    response = holder_api.generic("POST", path, body, content_type="application/json")

    _assert_json_error(response, 413, "request_too_large")


def test_a_form_body_over_the_limit_is_a_json_413(holder_api, small_bodies):
    holder_api.raise_request_exception = False

    response = holder_api.post("/api/v1/works", {"title": "x" * (small_bodies * 2)}, format="multipart")

    _assert_json_error(response, 413, "request_too_large")


def test_a_portal_form_over_the_limit_is_an_html_413(owner_client_like, small_bodies):
    response = owner_client_like.post("/accounts/login/", {"username": "x" * (small_bodies * 2), "password": "p"})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")


@pytest.fixture
def owner_client_like() -> Client:
    return Client(raise_request_exception=False)


def test_an_unexpected_api_failure_is_a_json_500(holder_api, monkeypatch):
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("registry.api.views.selectors.work_list_for_holder", broken)
    holder_api.raise_request_exception = False

    response = holder_api.get("/api/v1/works")

    _assert_json_error(response, 500, "server_error")
    assert "a bug" not in response.content.decode()


def test_an_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/no-such-thing")

    _assert_json_error(response, 404, "not_found")


def test_an_unexpected_failure_of_the_public_status_check_is_a_json_500(db, monkeypatch):
    from rest_framework.test import APIClient

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("optout.views.signal_status", broken)
    client = APIClient(raise_request_exception=False)

    response = client.get("/status", {"url": "https://news.example.kr/a"})

    _assert_json_error(response, 500, "server_error")


@pytest.mark.parametrize("path", ["/api/v1/works", "/api/v1/lookup"])
def test_a_70_mb_body_is_a_json_413_at_the_default_limit(holder_api, path):
    holder_api.raise_request_exception = False
    body = b'{"items": [], "title": "' + b"x" * (70 * 1024 * 1024) + b'"}'

    response = holder_api.generic("POST", path, body, content_type="application/json")

    _assert_json_error(response, 413, "request_too_large")
