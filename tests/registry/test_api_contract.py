"""The API's published contract: its schema documents the pages and errors it answers, its docs work offline,
and a key sent the wrong way is told how to send it."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

from core.actors import Actor
from registry.services import apikey_create

pytestmark = pytest.mark.django_db

# Every list the API pages through (RegistryAPIView.paginate, or the outcomes' JSON pages).
PAGINATED = [
    "/api/v1/api-keys",
    "/api/v1/claims",
    "/api/v1/distributions",
    "/api/v1/domains",
    "/api/v1/imports/{import_id}/errors",
    "/api/v1/invoices",
    "/api/v1/invoices/{invoice_pk}/lines",
    "/api/v1/refusals",
    "/api/v1/settlements",
    "/api/v1/statements",
    "/api/v1/statements/{statement_pk}/lines",
    "/api/v1/tariffs",
    "/api/v1/usage-manifests",
    "/api/v1/usage-manifests/{manifest_pk}/outcomes",
    "/api/v1/violations",
    "/api/v1/works",
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation) for path, item in schema["paths"].items() for method, operation in item.items()]


@pytest.mark.parametrize("path", PAGINATED)
def test_paginated_lists_are_documented_as_pages(schema: dict[str, Any], path: str) -> None:
    operation = schema["paths"][path]["get"]
    page = _resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert page["type"] == "object"
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["type"] == "array"
    assert "page" in {parameter["name"] for parameter in operation["parameters"]}


def test_paginated_lists_answer_pages_as_documented(holder_api: APIClient) -> None:
    body = holder_api.get("/api/v1/works").json()
    assert set(body) == {"count", "next", "previous", "results"}


def test_no_json_list_is_documented_as_a_bare_array(schema: dict[str, Any]) -> None:
    whole_files = {"/api/v1/domains/{domain_id}/tdmrep.json"}  # the W3C TDMRep file is an array, whole
    bare = []
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content and content["schema"].get("type") == "array" and path not in whole_files:
                bare.append(f"{method.upper()} {path} {code}")
    assert bare == []


def test_every_operation_documents_its_errors_in_the_one_error_shape(schema: dict[str, Any]) -> None:
    error = schema["components"]["schemas"]["ErrorOutput"]
    assert error["required"] == ["error"]
    detail = _resolve(schema, error["properties"]["error"])
    assert set(detail["required"]) == {"code", "message"}
    assert {"field", "line"} <= set(detail["properties"])
    for path, method, operation in _operations(schema):
        responses = operation["responses"]
        expected = {"503"}
        # Verifying a receipt and reading the public transparency log authenticate nobody.
        public = path == "/api/v1/receipts/verify" or (path.startswith("/api/v1/log/") and method == "get")
        if path.startswith("/api/v1/") and not public:
            expected |= {"401", "403"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"400", "413", "415"}
        if path in ("/api/v1/lookup", "/status"):
            expected.add("429")
        assert expected <= set(responses), f"{method.upper()} {path}: {sorted(responses)}"
        for code in expected:
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOutput"
            }, f"{method.upper()} {path} {code}"
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in responses[code]["headers"]


def test_the_api_key_scheme_says_how_to_send_the_key(schema: dict[str, Any]) -> None:
    scheme = schema["components"]["securitySchemes"]["ApiKey"]
    assert scheme["in"] == "header"
    assert scheme["name"] == "Authorization"
    assert "Api-Key <key>" in scheme["description"]
    assert {"ApiKey": []} in schema["paths"]["/api/v1/works"]["get"]["security"]


# --- Authorization header --------------------------------------------------------------------------


@pytest.fixture
def raw_key(holder: Any) -> str:
    _key, raw = apikey_create(actor=Actor.system(), party=holder, scopes=["works:write", "lookup"])
    return raw


@pytest.mark.parametrize("header", ["Bearer {key}", "{key}", "Token {key}"])
def test_a_key_sent_without_the_api_key_keyword_is_told_how_to_send_it(raw_key: str, header: str) -> None:
    response = APIClient().get("/api/v1/works", HTTP_AUTHORIZATION=header.format(key=raw_key))
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "api_key_scheme"
    assert "Authorization: Api-Key <key>" in error["message"]
    assert response["WWW-Authenticate"] == "Api-Key"


def test_the_same_key_with_the_api_key_keyword_is_accepted(raw_key: str) -> None:
    assert APIClient().get("/api/v1/works", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").status_code == 200


def test_no_credentials_says_how_to_send_a_key() -> None:
    response = APIClient().get("/api/v1/works")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert "Authorization: Api-Key <key>" in error["message"]


def test_a_proxys_basic_credentials_are_left_alone(raw_key: str) -> None:
    # A staging server behind HTTP Basic auth passes that header on: it is not a wrongly sent key.
    response = APIClient().get("/api/v1/works", HTTP_AUTHORIZATION="Basic c3RhZ2luZzpzZWNyZXQ=")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# --- Offline docs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/redoc/", "/api/v1/docs/"])
def test_the_api_docs_reference_no_other_host(path: str) -> None:
    response = APIClient().get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w", html) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page loads its scripts"
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not shipped"


def test_redoc_keeps_every_request_on_this_host() -> None:
    # The Redoc bundle shows a logo from its CDN; the page's policy stops that request.
    html = APIClient().get("/api/v1/redoc/").content.decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert "'self'" in directives["img-src"]
    assert "https:" not in directives["img-src"]
    assert directives["connect-src"] == "'self'"


# --- Ids beyond any id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/claims?work={id}", "/api/v1/statements?settlement={id}", "/api/v1/invoices?settlement={id}"],
)
@pytest.mark.parametrize("bad_id", [10**20, 2**63, 0])
def test_an_id_filter_out_of_range_is_a_400_not_a_500(staff_api: APIClient, url: str, bad_id: int) -> None:
    # Found by the schema fuzzer: the database cannot compare a foreign key with a number past 64 bits.
    response = staff_api.get(url.format(id=bad_id))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("out_of_range", "max_value", "min_value")
    assert error["field"] in ("work", "settlement")


@pytest.mark.parametrize(
    ("url", "body"),
    [("/api/v1/claims", {"work": 2**63}), ("/api/v1/refusals", {"scope": "work", "work": 0, "purposes": ["train-ai"]})],
)
def test_a_work_id_out_of_range_in_a_body_is_a_400(holder_api: APIClient, url: str, body: dict[str, Any]) -> None:
    response = holder_api.post(url, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "work"


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/claims", "post"), ("/api/v1/refusals", "post"), ("/api/v1/balance", "get")],
)
def test_an_unknown_id_in_a_body_or_query_is_a_documented_404(schema: dict[str, Any], path: str, method: str) -> None:
    # Found by the schema fuzzer: these name an object outside their path (work, party), and answer 404 for it.
    assert "404" in schema["paths"][path][method]["responses"]


def test_an_error_is_json_whatever_file_format_was_asked_for(holder_api: APIClient, lab_api: APIClient) -> None:
    # Found by the schema fuzzer: the CSV renderer rendered another party's import's 404 as an empty body.
    upload = io.BytesIO(b"title,kind,isbn\nBook,text,9788936434021\n")
    upload.name = "works.csv"
    work_import = holder_api.post("/api/v1/works/bulk", {"file": upload}, format="multipart").json()
    response = lab_api.get(f"/api/v1/imports/{work_import['id']}/errors?format=csv")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_a_nul_in_the_public_status_checks_query_is_a_json_error() -> None:
    # Found by the schema fuzzer: /status is an API operation outside /api/, and answered this 400 as plain text.
    response = APIClient().get("/status", {"url": "https://example.kr/\x00"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "nul_character"


@pytest.mark.parametrize("content_type", ["application/xml", ""])
def test_a_body_in_a_media_type_the_operation_does_not_read_is_a_documented_415(
    staff_api: APIClient, schema: dict[str, Any], content_type: str
) -> None:
    # Found by the schema fuzzer: a body whose Content-Type did not arrive answered an undocumented 415.
    response = staff_api.generic("POST", "/api/v1/settlements", "<period/>", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "415" in schema["paths"]["/api/v1/settlements"]["post"]["responses"]


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Any) -> None:
    # A view whose answers drf-spectacular cannot work out is documented wrongly: fail here, not in a client.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


@pytest.mark.parametrize("party_header", ["²", "99999999999999999999", "-1", "abc"])
def test_an_x_party_id_that_names_no_party_is_a_403_not_a_500(session_api: APIClient, party_header: str) -> None:
    response = session_api.get("/api/v1/works", HTTP_X_PARTY_ID=party_header)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_party"


def test_an_x_party_id_of_ones_own_party_acts_for_it(session_api: APIClient, holder: Any) -> None:
    assert session_api.get("/api/v1/works", HTTP_X_PARTY_ID=str(holder.pk)).status_code == 200
    assert session_api.get("/api/v1/works").status_code == 200


@pytest.mark.parametrize("raw", ["orr_\x00abcdef0_x", "orr_abc-def_x", f"orr_{'a' * 17}_x"])
def test_a_key_that_cannot_be_one_is_refused_without_asking_the_database(raw: str) -> None:
    # On PostgreSQL a NUL in the key's prefix was a 500 (text cannot hold NUL).
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
