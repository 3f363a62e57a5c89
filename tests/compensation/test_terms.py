"""Machine-readable terms over HTTP: the RSL 1.0 licences of works and verified domains (checked against the RSL
schema written from the specification, ``rsl-1.0.xsd`` beside this file) and the ODRL offers TDMRep's
``tdm-policy`` points to (read as JSON-LD by pyld)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from django.test import Client
from pyld import jsonld

from tests.factories import WorkFactory
from tests.optout.helpers import refuse
from tests.optout.test_signals import verified_domain, withdraw

pytestmark = pytest.mark.django_db

RSL = "{https://rslstandard.org/rsl}"
SCHEMA = xmlschema.XMLSchema11(str(Path(__file__).with_name("rsl-1.0.xsd")))


def licence(path):
    """GET a licence; assert it is RSL that the schema accepts; its root element."""
    response = Client().get(path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/rsl+xml; charset=utf-8"
    SCHEMA.validate(response.content.decode())
    return ET.fromstring(response.content)  # noqa: S314 (the registry's own answer, already schema-checked)


def licences(content):
    return [
        {
            "permits": [e.text for e in lic.findall(f"{RSL}permits")],
            "prohibits": [e.text for e in lic.findall(f"{RSL}prohibits")],
            "payment": lic.find(f"{RSL}payment").get("type") if lic.find(f"{RSL}payment") is not None else None,
            "standard": [e.text for e in lic.iter(f"{RSL}standard")],
            "custom": [e.text for e in lic.iter(f"{RSL}custom")],
            "amount": [(e.get("currency"), e.text) for e in lic.iter(f"{RSL}amount")],
        }
        for lic in content.findall(f"{RSL}license")
    ]


def set_tariff(staff_api, kind, unit, rate, **extra):
    response = staff_api.post("/api/v1/tariffs", {"kind": kind, "unit": unit, "rate_krw": rate, **extra}, format="json")
    assert response.status_code == 201, response.content


# --- The schema itself can fail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # train-genai is no RSL usage token.
        '<license><prohibits type="usage">train-genai</prohibits></license>',
        # an amount needs its currency.
        '<license><permits type="usage">ai-train</permits>'
        '<payment type="training"><amount>1</amount></payment></license>',
        '<license><permits type="usage">ai-train</permits><payment type="rent"/></license>',
        '<license><permits type="colour">red</permits></license>',
        "",
    ],
)
def test_the_schema_refuses_what_rsl_does_not_allow(body):
    document = f'<rsl xmlns="https://rslstandard.org/rsl"><content url="https://x.example.kr/">{body}</content></rsl>'

    assert not SCHEMA.is_valid(document)


# --- Works ------------------------------------------------------------------------------------------------


def test_a_use_first_work_permits_training_at_the_tariff_in_force(book, staff_api):
    set_tariff(staff_api, "text", "token", "0.0005")
    set_tariff(staff_api, "text", "item", "12")
    set_tariff(staff_api, "image", "image", "30")  # another kind's tariff is not this work's

    root = licence(f"/works/{book.pk}/license.xml")

    (content,) = root.findall(f"{RSL}content")
    assert content.get("url") == f"http://testserver/works/{book.pk}"
    assert content.find(f"{RSL}terms").text == f"http://testserver/works/{book.pk}"
    assert licences(content) == [
        {
            "permits": ["ai-train"],
            "prohibits": [],
            "payment": "training",
            "standard": [f"http://testserver/terms/text.jsonld#{unit}"],
            "custom": ["http://testserver/api/v1/usage-manifests"],
            "amount": [("KRW", amount)],
        }
        for unit, amount in (("token", "0.0005"), ("item", "12"))
    ]


def test_the_licence_follows_the_tariff_in_force_not_a_future_one(book, staff_api):
    set_tariff(staff_api, "text", "token", "0.0005")
    set_tariff(staff_api, "text", "token", "0.0009", effective_from="2099-01-01T00:00:00+09:00")

    (content,) = licence(f"/works/{book.pk}/license.xml").findall(f"{RSL}content")

    assert licences(content)[0]["amount"] == [("KRW", "0.0005")]


def test_a_work_without_a_tariff_is_permitted_unpriced(book):
    (content,) = licence(f"/works/{book.pk}/license.xml").findall(f"{RSL}content")

    (only,) = licences(content)
    assert (only["permits"], only["amount"]) == (["ai-train"], [])
    assert only["standard"] == ["http://testserver/terms/text.jsonld"]


@pytest.mark.parametrize("purposes", [["train-ai"], ["train-genai"]])
def test_a_refused_work_prohibits_ai_training(book, holder_api, staff_api, purposes):
    set_tariff(staff_api, "text", "token", "0.0005")
    refuse(holder_api, scope="work", work=book.pk, purposes=purposes)

    (content,) = licence(f"/works/{book.pk}/license.xml").findall(f"{RSL}content")

    assert licences(content) == [
        {"permits": [], "prohibits": ["ai-train"], "payment": None, "standard": [], "custom": [], "amount": []}
    ]


def test_a_withdrawn_refusal_brings_the_terms_back(book, holder_api, staff_api):
    set_tariff(staff_api, "text", "token", "0.0005")
    withdraw(holder_api, refuse(holder_api, scope="work", work=book.pk))

    (content,) = licence(f"/works/{book.pk}/license.xml").findall(f"{RSL}content")

    assert licences(content)[0]["permits"] == ["ai-train"]


def test_a_licence_required_kind_says_a_licence_is_needed(book, staff_api):
    set_tariff(staff_api, "text", "token", "0.0005")
    staff_api.post("/api/v1/regimes", {"kind": "text", "regime": "license_required"}, format="json")

    (content,) = licence(f"/works/{book.pk}/license.xml").findall(f"{RSL}content")

    assert licences(content) == [
        {
            "permits": ["ai-train"],
            "prohibits": [],
            "payment": "training",
            "standard": ["http://testserver/terms/text.jsonld"],
            "custom": [],
            "amount": [],
        }
    ]


def test_a_works_url_identifiers_are_its_contents(holder, staff):
    work = WorkFactory(
        holder=holder,
        identifiers=[("url", "https://blog.example.kr/post/1"), ("isbn", "9788936434021")],
        verified_by=staff,
    )

    root = licence(f"/works/{work.pk}/license.xml")

    assert [c.get("url") for c in root.findall(f"{RSL}content")] == ["https://blog.example.kr/post/1"]


def test_an_unknown_work_has_no_licence(db):
    assert Client().get("/works/999999/license.xml").status_code == 404


# --- Domains ----------------------------------------------------------------------------------------------


def test_a_domains_licence_prohibits_its_refused_prefixes_and_prices_the_rest(holder, holder_api, staff_api):
    domain = verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")
    set_tariff(staff_api, "text", "token", "0.0005")
    set_tariff(staff_api, "image", "image", "30")
    staff_api.post("/api/v1/regimes", {"kind": "audio", "regime": "license_required"}, format="json")

    root = licence(f"/domains/{domain.pk}/license.xml")

    contents = root.findall(f"{RSL}content")
    assert [c.get("url") for c in contents] == ["https://news.example.kr/2026/opinion/", "https://news.example.kr/"]
    assert licences(contents[0])[0]["prohibits"] == ["ai-train"]
    rest = licences(contents[1])
    priced = {(lic["standard"][0], lic["amount"][0]) for lic in rest if lic["amount"]}
    assert priced == {
        ("http://testserver/terms/text.jsonld#token", ("KRW", "0.0005")),
        ("http://testserver/terms/image.jsonld#image", ("KRW", "30")),
    }
    audio = next(lic for lic in rest if lic["standard"] == ["http://testserver/terms/audio.jsonld"])
    assert (audio["amount"], audio["custom"]) == ([], [])


def test_a_whole_site_refusal_leaves_nothing_priced(holder, holder_api):
    domain = verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/")

    contents = licence(f"/domains/{domain.pk}/license.xml").findall(f"{RSL}content")

    assert [c.get("url") for c in contents] == ["https://news.example.kr/"]
    assert licences(contents[0])[0]["prohibits"] == ["ai-train"]


def test_a_pending_domain_has_no_licence(holder_api):
    created = holder_api.post("/api/v1/domains", {"origin": "https://blog.example.kr", "method": "dns"}, format="json")

    assert Client().get(f"/domains/{created.json()['id']}/license.xml").status_code == 404


# --- ODRL offers (TDMRep tdm-policy) -----------------------------------------------------------------------

ODRL = "http://www.w3.org/ns/odrl/2/"
# The ODRL 2.2 terms the offers use, as the W3C context (http://www.w3.org/ns/odrl.jsonld) defines them; served to
# pyld locally so the test needs no network.
ODRL_CONTEXT = {
    "@context": {
        "odrl": ODRL,
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "dct": "http://purl.org/dc/terms/",
        "uid": "@id",
        "type": "@type",
        "Offer": "odrl:Offer",
        "profile": {"@type": "@id", "@id": "odrl:profile"},
        "assigner": {"@type": "@id", "@id": "odrl:assigner"},
        "target": {"@type": "@id", "@id": "odrl:target"},
        "permission": {"@type": "@id", "@id": "odrl:permission"},
        "duty": {"@type": "@id", "@id": "odrl:duty"},
        "action": {"@type": "@vocab", "@id": "odrl:action"},
        "constraint": {"@type": "@id", "@id": "odrl:constraint"},
        "leftOperand": {"@type": "@vocab", "@id": "odrl:leftOperand"},
        "operator": {"@type": "@vocab", "@id": "odrl:operator"},
        "rightOperand": "odrl:rightOperand",
        "unit": "odrl:unit",
        "informedParty": {"@type": "@id", "@id": "odrl:informedParty"},
        "compensate": "odrl:compensate",
        "inform": "odrl:inform",
        "obtainConsent": "odrl:obtainConsent",
        "payAmount": "odrl:payAmount",
        "unitOfCount": "odrl:unitOfCount",
        "eq": "odrl:eq",
    }
}


def _loader(url, options=None):
    assert url == "http://www.w3.org/ns/odrl.jsonld", url
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": ODRL_CONTEXT}


def offer_triples(kind):
    response = Client().get(f"/terms/{kind}.jsonld")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/ld+json"
    dataset = jsonld.to_rdf(json.loads(response.content), {"documentLoader": _loader})
    return {(t["subject"]["value"], t["predicate"]["value"], t["object"]["value"]) for t in dataset["@default"]}


def _objects(triples, subject, predicate):
    return {o for s, p, o in triples if s == subject and p == predicate}


def test_a_kinds_offer_is_odrl_with_a_compensate_duty_at_the_tariff(staff_api):
    set_tariff(staff_api, "text", "token", "0.0005")

    triples = offer_triples("text")

    offer = "http://testserver/terms/text.jsonld"
    assert (offer, "http://www.w3.org/1999/02/22-rdf-syntax-ns#type", ODRL + "Offer") in triples
    assert _objects(triples, offer, ODRL + "profile") == {"http://www.w3.org/ns/tdmrep"}
    (permission,) = _objects(triples, offer, ODRL + "permission")
    assert permission == offer + "#token"
    assert _objects(triples, permission, ODRL + "action") == {"http://www.w3.org/ns/tdmrep#mine"}
    duties = _objects(triples, permission, ODRL + "duty")
    actions = {action for duty in duties for action in _objects(triples, duty, ODRL + "action")}
    assert actions == {ODRL + "compensate", ODRL + "inform"}
    compensate = next(d for d in duties if _objects(triples, d, ODRL + "action") == {ODRL + "compensate"})
    (constraint,) = _objects(triples, compensate, ODRL + "constraint")
    assert _objects(triples, constraint, ODRL + "leftOperand") == {ODRL + "payAmount"}
    assert _objects(triples, constraint, ODRL + "rightOperand") == {"0.0005"}
    assert _objects(triples, constraint, ODRL + "unit") == {"http://cvx.iptc.org/iso4217a/KRW"}


def test_a_licence_required_kinds_offer_asks_for_consent_first(staff_api):
    staff_api.post("/api/v1/regimes", {"kind": "audio", "regime": "license_required"}, format="json")
    set_tariff(staff_api, "audio", "second", "0.2")

    triples = offer_triples("audio")

    actions = {o for s, p, o in triples if p == ODRL + "action"}
    assert {ODRL + "obtainConsent", ODRL + "compensate", "http://www.w3.org/ns/tdmrep#mine"} <= actions


def test_an_unknown_kind_has_no_offer(db):
    assert Client().get("/terms/poetry.jsonld").status_code == 404
