"""Rights metadata embedded in a work file: C2PA cawg.training-mining and XMP plus:DataMining, read when the file
is fingerprinted, shown in the API and the portal, and a declared refusal offered for filing."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.test import Client
from PIL import Image

from optout.models import Purpose, Refusal
from optout.site_signals import READ_TABLE, purposes_refused
from optout.vocabularies import SIGNALS, Stance
from registry.embedded_rights import EMBEDDED_READ_TABLE, TRAIN_AI, TRAIN_GENAI, embedded_rights_read
from registry.models import AuditEvent, Work, WorkFile
from tests.factories import verify_claims

pytestmark = pytest.mark.django_db


# --- Test images ------------------------------------------------------------------------------------------


def jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, "JPEG")
    return buffer.getvalue()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Registry tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def test_certificate_chain() -> tuple[bytes, bytes]:
    """A root and a signing certificate made for this test run (PEM chain, PEM private key), as C2PA asks of a
    signer: an end-entity certificate with digitalSignature and an extended key usage, issued by a CA."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Test root"))
        .issuer_name(_name("Test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("Test photographer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    chain = signer.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, private


test_certificate_chain.__test__ = False  # type: ignore[attr-defined]


def c2pa_signed_jpeg(entries: dict[str, str], *, label: str = "cawg.training-mining") -> bytes:
    """A JPEG carrying a C2PA manifest, signed here with the test chain, with a training-mining assertion."""
    return c2pa_sign(jpeg(), entries, label=label)


def c2pa_sign(image: bytes, entries: dict[str, str], *, label: str = "cawg.training-mining") -> bytes:
    """``image`` (a JPEG) with a C2PA manifest signed with a fresh test chain, stating ``entries`` (use: value)."""
    chain, private = test_certificate_chain()
    manifest = {
        "claim_generator_info": [{"name": "registry-tests", "version": "1"}],
        "title": "photo.jpg",
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
                        }
                    ]
                },
            },
            {"label": label, "data": {"entries": {f"cawg.{use}": {"use": value} for use, value in entries.items()}}},
        ],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
    signed = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(image), signed)
    return signed.getvalue()


def xmp_jpeg(data_mining: str, *, as_element: bool = False) -> bytes:
    """A JPEG with an XMP packet (APP1, Adobe's namespace header) stating IPTC plus:DataMining."""
    return xmp_inserted(jpeg((30, 30, 200)), data_mining, as_element=as_element)


def xmp_inserted(image: bytes, data_mining: str, *, as_element: bool = False) -> bytes:
    """``image`` (a JPEG) with an XMP packet stating ``plus:DataMining``, right after its start-of-image marker."""
    value = f"http://ns.useplus.org/ldf/vocab/{data_mining}"
    prop = f"<plus:DataMining>{value}</plus:DataMining>" if as_element else ""
    attribute = "" if as_element else f' plus:DataMining="{value}"'
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"{attribute}>{prop}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return image[:2] + segment + image[2:]


# --- Upload helpers ---------------------------------------------------------------------------------------


def upload_image(client: Any, data: bytes, name: str, captured: Any) -> dict[str, Any]:
    file = io.BytesIO(data)
    file.name = name
    with captured(execute=True):
        response = client.post("/api/v1/works", {"title": "사진", "kind": "image", "file": file}, format="multipart")
    assert response.status_code == 202, response.content
    body: dict[str, Any] = client.get(response["Location"]).json()
    assert body["status"] == "done", body
    return body


@pytest.fixture
def session_client(owner: Any, holder: Any) -> Client:
    client = Client()
    client.force_login(owner)
    return client


# --- The read table ---------------------------------------------------------------------------------------


def test_the_registry_reads_embedded_declarations_with_the_site_signals_table():
    # One table for every signal read: the registry's purposes are optout's, and the keys are optout's keys.
    assert {TRAIN_AI, TRAIN_GENAI} == set(Purpose.values)
    for key, purposes in EMBEDDED_READ_TABLE.items():
        assert READ_TABLE[key] == purposes


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("cawg:ai_training=notAllowed", {"train-ai": True, "train-genai": True}),
        ("cawg:ai_generative_training=notAllowed", {"train-ai": False, "train-genai": True}),
        ("cawg:data_mining=notAllowed", {"train-ai": True, "train-genai": True}),
        ("cawg:ai_inference=notAllowed", {"train-ai": False, "train-genai": False}),
        ("iptc:DMI-PROHIBITED", {"train-ai": True, "train-genai": True}),
        ("iptc:DMI-PROHIBITED-AIMLTRAINING", {"train-ai": True, "train-genai": True}),
        ("iptc:DMI-PROHIBITED-GENAIMLTRAINING", {"train-ai": False, "train-genai": True}),
        ("iptc:DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", {"train-ai": True, "train-genai": True}),
    ],
)
def test_every_embedded_declaration_row(key, refused):
    assert purposes_refused([key]) == refused


@pytest.mark.parametrize("stance", [Stance.REFUSED_TRAIN_AI, Stance.REFUSED_TRAIN_GENAI])
def test_the_iptc_value_the_registry_emits_reads_back_as_the_same_refusal(stance):
    emitted = SIGNALS[stance].iptc_data_mining.rsplit("/", 1)[1]
    refused = purposes_refused([f"iptc:{emitted}"])
    assert refused == {"train-ai": stance == Stance.REFUSED_TRAIN_AI, "train-genai": True}

    found = embedded_rights_read(file=io.BytesIO(xmp_jpeg(emitted)))
    assert found.read == [f"iptc:{emitted}"]


def test_a_generative_only_c2pa_declaration_offers_a_generative_only_refusal():
    found = embedded_rights_read(
        file=io.BytesIO(c2pa_signed_jpeg({"ai_generative_training": "notAllowed", "ai_training": "allowed"}))
    )
    assert found.read == ["cawg:ai_generative_training=notAllowed"]
    assert found.as_json()["said"] == {"train-ai": False, "train-genai": True}


def test_the_c2pa_1x_assertion_label_is_read_too():
    found = embedded_rights_read(
        file=io.BytesIO(c2pa_signed_jpeg({"ai_training": "notAllowed"}, label="c2pa.training-mining"))
    )
    assert found.c2pa is not None
    assert found.c2pa["assertion"] == "c2pa.training-mining"
    assert found.read == ["cawg:ai_training=notAllowed"]


def test_a_manifest_kept_elsewhere_is_not_fetched():
    """A file may point to a remote C2PA manifest: the worker must not call the address the file names."""
    import http.server
    import threading

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa"
        chain, private = test_certificate_chain()
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
        manifest = {
            "claim_generator_info": [{"name": "registry-tests", "version": "1"}],
            "format": "image/jpeg",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
                            }
                        ]
                    },
                }
            ],
        }
        signed = io.BytesIO()
        with c2pa.Builder(manifest) as builder:
            builder.set_no_embed()
            builder.set_remote_url(url)
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg()), signed)
        assert url.encode() in signed.getvalue()

        found = embedded_rights_read(file=io.BytesIO(signed.getvalue()))
    finally:
        server.shutdown()
        server.server_close()

    assert requests == []
    assert found.c2pa is None
    assert found.read == []
    assert found.errors[0].startswith("c2pa_remote_manifest_not_fetched: ")
    assert url in found.errors[0]


def test_xmp_as_an_element_and_damaged_xmp():
    assert embedded_rights_read(file=io.BytesIO(xmp_jpeg("DMI-PROHIBITED", as_element=True))).read == [
        "iptc:DMI-PROHIBITED"
    ]
    damaged = xmp_jpeg("DMI-PROHIBITED").replace(b"</rdf:RDF>", b"</rdf:RDX>")
    found = embedded_rights_read(file=io.BytesIO(damaged))
    assert found.read == []
    assert found.xmp is None
    assert found.errors
    assert found.errors[0].startswith("xmp_unreadable")


def test_an_xmp_entity_expansion_is_refused_not_expanded():
    bomb = xmp_jpeg("DMI-PROHIBITED").replace(
        b"<x:xmpmeta", b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x:xmpmeta', 1
    )
    found = embedded_rights_read(file=io.BytesIO(bomb))
    assert found.read == []
    assert found.errors
    assert found.errors[0].startswith("xmp_unreadable")


# --- Through the API and the portal -----------------------------------------------------------------------


def test_a_signed_c2pa_image_that_refuses_training_is_shown_and_offers_a_refusal(
    holder_api, django_capture_on_commit_callbacks
):
    data = c2pa_signed_jpeg(
        {"ai_training": "notAllowed", "ai_generative_training": "notAllowed", "data_mining": "allowed"}
    )

    body = upload_image(holder_api, data, "photo.jpg", django_capture_on_commit_callbacks)

    rights = body["embedded_rights"]
    assert rights["read"] == ["cawg:ai_training=notAllowed", "cawg:ai_generative_training=notAllowed"]
    assert rights["said"] == {"train-ai": True, "train-genai": True}
    assert rights["c2pa"]["assertion"] == "cawg.training-mining"
    assert rights["c2pa"]["entries"] == {
        "ai_training": "notAllowed",
        "ai_generative_training": "notAllowed",
        "data_mining": "allowed",
    }
    assert rights["c2pa"]["signer"] == {"issuer": "Registry tests", "common_name": "Test photographer"}
    # The signature verifies; its signer is on no trust list the registry holds.
    assert rights["c2pa"]["validation_state"] == "Valid"
    assert rights["c2pa"]["failures"] == ["signingCredential.untrusted"]
    assert rights["xmp"] is None
    assert rights["errors"] == []
    work_id = body["work"]
    assert rights["refusal_offer"] == {
        "purpose": "train-ai",
        "method": "POST",
        "url": "/api/v1/refusals",
        "body": {"scope": "work", "work": work_id, "purposes": ["train-ai"]},
        "portal_url": f"/dashboard/refusals/new/?works={work_id}&purpose=train-ai",
    }
    event = AuditEvent.objects.get(code="registry.work_file.fingerprinted")
    assert event.data["embedded_rights"] == rights["read"]

    # The hint files the refusal as it says.
    offer = rights["refusal_offer"]
    filed = holder_api.post(offer["url"], offer["body"], format="json")
    assert filed.status_code == 201, filed.content
    assert Refusal.objects.filter(work_id=work_id, purpose="train-ai").count() == 1


def test_an_xmp_image_that_prohibits_ai_training_is_shown_and_offers_a_refusal(
    holder_api, django_capture_on_commit_callbacks
):
    body = upload_image(
        holder_api, xmp_jpeg("DMI-PROHIBITED-AIMLTRAINING"), "scan.jpg", django_capture_on_commit_callbacks
    )

    rights = body["embedded_rights"]
    assert rights["read"] == ["iptc:DMI-PROHIBITED-AIMLTRAINING"]
    assert rights["xmp"] == {"data_mining": "DMI-PROHIBITED-AIMLTRAINING", "other_constraints": None}
    assert rights["c2pa"] is None
    assert rights["refusal_offer"]["purpose"] == "train-ai"
    assert WorkFile.objects.get(pk=body["id"]).embedded_rights["said"] == {"train-ai": True, "train-genai": True}


def test_an_image_with_neither_declares_nothing_and_offers_nothing(holder_api, django_capture_on_commit_callbacks):
    body = upload_image(holder_api, jpeg(), "plain.jpg", django_capture_on_commit_callbacks)

    assert body["embedded_rights"] == {
        "read": [],
        "said": {"train-ai": False, "train-genai": False},
        "c2pa": None,
        "xmp": None,
        "errors": [],
        "refusal_offer": None,
    }


def test_a_file_not_yet_fingerprinted_has_no_embedded_rights_yet(holder_api, django_capture_on_commit_callbacks):
    file = io.BytesIO(jpeg())
    file.name = "queued.jpg"
    with django_capture_on_commit_callbacks(execute=False):
        response = holder_api.post(
            "/api/v1/works", {"title": "사진", "kind": "image", "file": file}, format="multipart"
        )
    assert response.status_code == 202
    assert holder_api.get(response["Location"]).json()["embedded_rights"] is None


def test_the_portal_shows_the_declaration_and_a_button_to_file_the_refusal(
    session_client, holder_api, staff, django_capture_on_commit_callbacks
):
    data = c2pa_signed_jpeg({"ai_generative_training": "notAllowed"})
    body = upload_image(holder_api, data, "photo.jpg", django_capture_on_commit_callbacks)
    work_id = body["work"]

    page = session_client.get(f"/dashboard/works/{work_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "cawg.training-mining" in page
    assert "Generative AI training" in page
    assert "not allowed" in page
    assert "signed by Test photographer (Registry tests)" in page
    link = f"/dashboard/refusals/new/?works={work_id}&amp;purpose=train-genai"
    assert f'id="file-{body["id"]}-refuse" href="{link}"' in page
    assert "File a refusal of generative AI training, as the file declares" in page

    # The button's form arrives filled in: this work ticked, generative training chosen.
    form = session_client.get(link.replace("&amp;", "&"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'value="{work_id}"' in form
    assert "checked" in form.split(f'value="{work_id}"', 1)[1].split(">", 1)[0]
    assert 'value="train-genai"' in form
    assert "checked" in form.split('value="train-genai"', 1)[1].split(">", 1)[0]

    # Once a refusal is in force (the owner verified), the page says so instead of offering one.
    verify_claims(Work.objects.get(pk=work_id), staff)
    holder_api.post("/api/v1/refusals", {"scope": "work", "work": work_id, "purposes": ["train-ai"]}, format="json")
    page = session_client.get(f"/dashboard/works/{work_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'id="file-{body["id"]}-refuse"' not in page
    assert "a refusal of yours is in force for this work" in page


def test_the_portal_says_in_korean_what_an_xmp_file_declares(
    session_client, holder_api, django_capture_on_commit_callbacks
):
    body = upload_image(
        holder_api, xmp_jpeg("DMI-PROHIBITED-AIMLTRAINING"), "scan.jpg", django_capture_on_commit_callbacks
    )

    page = session_client.get(f"/dashboard/works/{body['work']}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()

    assert "DMI-PROHIBITED-AIMLTRAINING" in page
    assert f'id="file-{body["id"]}-refuse"' in page
    assert "File a refusal of AI training, as the file declares" not in page
