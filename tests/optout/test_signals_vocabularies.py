"""The one mapping table (``optout.vocabularies.SIGNALS``): every row in every vocabulary, as crawlers receive it
from the public pages and the domain files, read back by a maintained robots.txt parser (protego) and by the
registry's strict parsers (``optout.site_signals``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from protego import Protego

from optout.signals import PathRule, robots_txt
from optout.site_signals import aipref_parse, content_signal_parse, robots_parse, sf_dictionary_parse
from optout.vocabularies import SIGNALS, VOCABULARIES, Stance, headers_for, meta_tags_for
from tests.factories import WorkFactory
from tests.optout.helpers import refuse
from tests.optout.test_signals import verified_domain, withdraw

# --- The table --------------------------------------------------------------------------------------------

# What each stance says in each vocabulary, written out by hand: a change to the table must change this too.
EXPECTED: dict[Stance, dict[str, Any]] = {
    Stance.REFUSED_TRAIN_AI: {
        "aipref": "train-ai=n",
        "content_signal": ("ai-train", "no"),
        "rsl": ("prohibits", "ai-train"),
        "tdm_reservation": 1,
        "tdm_policy": False,
        "x_robots_tag": "noai, noimageai",
        "iptc": "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING",
    },
    Stance.REFUSED_TRAIN_GENAI: {
        "aipref": "train-ai=n",
        "content_signal": ("ai-train", "no"),
        "rsl": ("prohibits", "ai-train"),
        "tdm_reservation": 1,
        "tdm_policy": False,
        "x_robots_tag": "noai, noimageai",
        "iptc": "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING",
    },
    Stance.LICENSE_REQUIRED: {
        "aipref": None,
        "content_signal": None,
        "rsl": ("permits", "ai-train"),
        "tdm_reservation": 1,
        "tdm_policy": True,
        "x_robots_tag": None,
        "iptc": "http://ns.useplus.org/ldf/vocab/DMI-SEE-LINKEDRIGHTSEXPR",
    },
    Stance.USE_FIRST: {
        "aipref": None,
        "content_signal": None,
        "rsl": ("permits", "ai-train"),
        "tdm_reservation": None,
        "tdm_policy": False,
        "x_robots_tag": None,
        "iptc": "http://ns.useplus.org/ldf/vocab/DMI-SEE-LINKEDRIGHTSEXPR",
    },
}


def test_every_vocabulary_names_its_version_and_source():
    assert {v.key for v in VOCABULARIES} == {"aipref", "content-signals", "rsl", "tdmrep", "x-robots-tag", "iptc"}
    for vocabulary in VOCABULARIES:
        assert vocabulary.version
        assert vocabulary.reference.startswith("https://")
    assert next(v for v in VOCABULARIES if v.key == "aipref").version == "draft-ietf-aipref-vocab-08"


@pytest.mark.parametrize("stance", list(Stance))
def test_each_row_of_the_table(stance):
    row, expected = SIGNALS[stance], EXPECTED[stance]

    assert (f"{row.aipref[0]}={row.aipref[1]}" if row.aipref else None) == expected["aipref"]
    assert row.content_signal == expected["content_signal"]
    rsl = ("prohibits", row.rsl_prohibits) if row.rsl_prohibits else ("permits", row.rsl_permits)
    assert rsl == expected["rsl"]
    assert row.tdm_reservation == expected["tdm_reservation"]
    assert row.tdm_policy == expected["tdm_policy"]
    assert (", ".join(row.x_robots_tag) or None) == expected["x_robots_tag"]
    assert row.iptc_data_mining == expected["iptc"]


@pytest.mark.parametrize("stance", list(Stance))
def test_headers_and_meta_tags_come_from_the_row(stance):
    expected = EXPECTED[stance]

    headers = headers_for(
        stance=stance,
        tdm_policy_url="https://r.example/terms/text.jsonld",
        license_url="https://r.example/works/1/license.xml",
    )
    meta = dict(meta_tags_for(stance=stance, tdm_policy_url="https://r.example/terms/text.jsonld"))

    assert headers.get("Content-Usage") == expected["aipref"]
    assert headers.get("X-Robots-Tag") == expected["x_robots_tag"] == meta.get("robots")
    reservation = str(expected["tdm_reservation"]) if expected["tdm_reservation"] is not None else None
    assert headers.get("tdm-reservation") == reservation == meta.get("tdm-reservation")
    policy = "https://r.example/terms/text.jsonld" if expected["tdm_policy"] else None
    assert headers.get("tdm-policy") == policy == meta.get("tdm-policy")
    assert headers["Link"] == '<https://r.example/works/1/license.xml>; rel="license"; type="application/rsl+xml"'
    # Content Signals are a robots.txt directive only.
    assert "Content-Signal" not in headers
    if headers.get("Content-Usage"):
        assert aipref_parse(headers["Content-Usage"]) == {"train-ai": False}


# --- Through the public work page -------------------------------------------------------------------------


def _page(work_id):
    return Client().get(f"/works/{work_id}", HTTP_ACCEPT_LANGUAGE="en")


def test_a_refused_work_page_sends_the_refused_row(book, holder_api):
    refuse(holder_api, scope="work", work=book.pk)

    response = _page(book.pk)

    assert response.status_code == 200
    assert response["Content-Usage"] == "train-ai=n"
    assert response["tdm-reservation"] == "1"
    assert not response.has_header("tdm-policy")
    assert response["X-Robots-Tag"] == "noai, noimageai"
    assert (
        response["Link"]
        == f'<http://testserver/works/{book.pk}/license.xml>; rel="license"; type="application/rsl+xml"'
    )
    html = response.content.decode()
    assert '<meta name="robots" content="noai, noimageai">' in html
    assert '<meta name="tdm-reservation" content="1">' in html
    assert (
        f'<link rel="license" type="application/rsl+xml" href="http://testserver/works/{book.pk}/license.xml">' in html
    )


def test_a_licence_required_work_is_reserved_with_its_kinds_policy(book, staff_api):
    staff_api.post("/api/v1/regimes", {"kind": "text", "regime": "license_required"}, format="json")

    response = _page(book.pk)

    assert response["tdm-reservation"] == "1"
    assert response["tdm-policy"] == "http://testserver/terms/text.jsonld"
    assert not response.has_header("Content-Usage")
    assert not response.has_header("X-Robots-Tag")
    assert '<meta name="tdm-policy" content="http://testserver/terms/text.jsonld">' in response.content.decode()


def test_a_use_first_work_page_is_not_reserved_and_links_its_terms(book):
    response = _page(book.pk)

    assert not response.has_header("tdm-reservation")
    assert not response.has_header("Content-Usage")
    assert response["Link"].startswith(f"<http://testserver/works/{book.pk}/license.xml>")
    assert 'name="tdm-reservation"' not in response.content.decode()


def test_the_status_of_a_registered_url_links_the_works_licence(holder, staff):
    work = WorkFactory(holder=holder, identifiers=[("url", "https://blog.example.kr/post/1")], verified_by=staff)

    response = Client().get("/status", {"url": "https://blog.example.kr/post/1"})

    assert response.status_code == 200
    assert response["Link"].startswith(f"<http://testserver/works/{work.pk}/license.xml>")
    assert not Client().get("/status", {"url": "https://nowhere.example.kr/"}).has_header("Link")


# --- robots.txt -------------------------------------------------------------------------------------------

PUBLISHER_ROBOTS = """User-Agent: *
Disallow: /private/
Allow: /

Sitemap: https://news.example.kr/sitemap.xml
"""


@pytest.fixture
def news(holder, holder_api):
    domain = verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/photos/", purposes=["train-genai"])
    withdraw(holder_api, refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/sports/"))
    return domain


def test_the_domains_robots_txt_has_content_usage_and_a_global_license_line(news, holder_api):
    response = holder_api.get(f"/api/v1/domains/{news.pk}/robots.txt")

    assert response.status_code == 200
    lines = [line for line in response.content.decode().splitlines() if line and not line.startswith("#")]
    assert lines == [
        "User-Agent: *",
        "Content-Usage: /2026/opinion/ train-ai=n",
        "Content-Usage: /photos/ train-ai=n",
        f"License: http://testserver/domains/{news.pk}/license.xml",
    ]


def test_the_lines_merged_into_a_publishers_robots_txt_parse_in_protego_and_strictly(news, holder_api):
    ours = holder_api.get(f"/api/v1/domains/{news.pk}/robots.txt").content.decode()
    merged = PUBLISHER_ROBOTS + "\n" + ours

    robots = Protego.parse(merged)
    signals = robots_parse(merged)

    # The publisher's crawl rules mean what they meant; the usage lines are directives protego does not apply.
    assert robots.can_fetch("https://news.example.kr/2026/opinion/a", "AnyBot")
    assert not robots.can_fetch("https://news.example.kr/private/a", "AnyBot")
    assert list(robots.sitemaps) == ["https://news.example.kr/sitemap.xml"]
    group = signals.for_agent("AnyBot")
    assert group is not None
    assert group.content_usage == [("/2026/opinion/", {"train-ai": False}), ("/photos/", {"train-ai": False})]
    assert signals.licenses == [f"http://testserver/domains/{news.pk}/license.xml"]


def test_a_whole_site_refusal_also_says_content_signal(holder, holder_api):
    domain = verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/")

    text = holder_api.get(f"/api/v1/domains/{domain.pk}/robots.txt").content.decode()
    group = robots_parse(text).for_agent("*")

    assert group is not None
    assert group.content_signal == {"ai-train": False}
    assert content_signal_parse("Content-Signal: ai-train=no".partition(": ")[2]) == {"ai-train": False}
    assert group.content_usage == [("/", {"train-ai": False})]
    assert Protego.parse(text).can_fetch("https://news.example.kr/anything", "bot")


def test_a_domain_with_nothing_refused_still_points_to_its_licence(holder, holder_api):
    domain = verified_domain(holder)

    text = holder_api.get(f"/api/v1/domains/{domain.pk}/robots.txt").content.decode()

    assert "User-Agent" not in text
    assert robots_parse(text).licenses == [f"http://testserver/domains/{domain.pk}/license.xml"]


def test_the_robots_lines_without_a_licence_url_have_no_license_line():
    text = robots_txt(rules=[PathRule(path="/a/", purpose="train-ai")], origin="https://x.example.kr")

    assert not robots_parse(text).licenses


# --- The aipref grammar: the strict parser, on the draft's grammar (RFC 9651 Dictionary) --------------------

AIPREF_VECTORS = [
    ("train-ai=n", {"train-ai": False}),
    ("train-ai=y", {"train-ai": True}),
    ("search=y, train-ai=n", {"search": True, "train-ai": False}),
    ("train-ai=n,search=y", {"search": True, "train-ai": False}),
    # Unknown labels are ignored: a conforming crawler never saw train-genai.
    ("train-genai=n", {}),
    ("train-genai=n, train-ai=y", {"train-ai": True}),
    # The last value of a label wins (RFC 9651 Dictionary).
    ("train-ai=y, train-ai=n", {"train-ai": False}),
    # Parameters are allowed and ignored.
    ("train-ai=n;exceptions=none", {"train-ai": False}),
    # Values other than the tokens y and n say nothing.
    ('train-ai="n"', {}),
    ("train-ai", {}),
    ("train-ai=no", {}),
    ("", {}),
]
AIPREF_INVALID = ["Train-AI=n", "train-ai=n,", "train-ai=n,, search=y", "train-ai = n", "=n", "train-ai=n search=y"]


@pytest.mark.parametrize(("value", "prefs"), AIPREF_VECTORS)
def test_aipref_values_parse_strictly(value, prefs):
    assert aipref_parse(value) == prefs


@pytest.mark.parametrize("value", AIPREF_INVALID)
def test_an_invalid_aipref_value_is_ignored_whole(value):
    assert sf_dictionary_parse(value) is None
    assert aipref_parse(value) is None


# --- IPTC plus:DataMining as an XMP sidecar -----------------------------------------------------------------


def _jpeg_with_xmp(packet: bytes) -> bytes:
    """A JPEG carrying ``packet`` in its APP1 XMP segment, as exiftool writes a sidecar into a file."""
    import io
    import struct

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 10)).save(buffer, "JPEG")
    plain = buffer.getvalue()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + plain[2:]


@pytest.mark.parametrize("stance", list(Stance))
def test_the_xmp_sidecar_states_the_rows_iptc_value_and_reads_back(stance):
    import io

    from defusedxml.ElementTree import fromstring

    from optout.site_signals import purposes_refused
    from optout.vocabularies import xmp_packet_for
    from registry.embedded_rights import embedded_rights_read

    packet = xmp_packet_for(stance=stance, license_url="https://r.example/works/1/license.xml")

    assert packet.startswith('<?xpacket begin="\ufeff"'.encode())
    root = fromstring(packet)
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    ext = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
    (description,) = root.iter(f"{rdf}Description")
    assert description.findtext("{http://ns.useplus.org/ldf/xmp/1.0/}DataMining") == EXPECTED[stance]["iptc"]
    link = description.find(f"{ext}LinkedEncRightsExpr/{rdf}Bag/{rdf}li")
    assert link is not None
    assert link.findtext(f"{ext}LinkedRightsExpr") == "https://r.example/works/1/license.xml"
    assert link.findtext(f"{ext}RightsExprEncType") == "application/rsl+xml"

    # Written into a file, the registry's own reader finds the same stance's refusal in it.
    found = embedded_rights_read(file=io.BytesIO(_jpeg_with_xmp(packet)))
    value = EXPECTED[stance]["iptc"].rsplit("/", 1)[1]
    assert found.xmp == {"data_mining": value, "other_constraints": None}
    expected_refused = {
        Stance.REFUSED_TRAIN_AI: {"train-ai": True, "train-genai": True},
        Stance.REFUSED_TRAIN_GENAI: {"train-ai": False, "train-genai": True},
    }.get(stance, {"train-ai": False, "train-genai": False})
    assert purposes_refused(found.read) == expected_refused == found.as_json()["said"]


def test_a_works_xmp_sidecar_follows_its_refusal(book, holder_api):
    use_first = Client().get(f"/works/{book.pk}/rights.xmp")
    assert use_first.status_code == 200
    assert use_first["Content-Type"] == "application/rdf+xml; charset=utf-8"
    assert use_first["Content-Disposition"] == f'attachment; filename="work-{book.pk}-rights.xmp"'
    assert b"DMI-SEE-LINKEDRIGHTSEXPR" in use_first.content
    assert f"http://testserver/works/{book.pk}/license.xml".encode() in use_first.content

    refuse(holder_api, scope="work", work=book.pk, purposes=["train-genai"])

    refused = Client().get(f"/works/{book.pk}/rights.xmp")
    assert b"http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING" in refused.content
    assert Client().get("/works/999999/rights.xmp").status_code == 404
