"""Rights metadata embedded in a work's file: what the file itself declares about AI training and data mining.

Two declarations are read when a work file is fingerprinted (``registry/work_files.py``):

- a C2PA manifest's CAWG training-and-data-mining assertion (``cawg.training-mining``, or its C2PA 1.x name
  ``c2pa.training-mining``), read with ``c2pa-python``: per use (``ai_training``, ``ai_generative_training``,
  ``ai_inference``, ``data_mining``) ``allowed``, ``notAllowed`` or ``constrained``, with who signed the manifest
  and whether the signature validates;
- IPTC's ``plus:DataMining`` in the file's XMP packet (a PLUS ``DMI-*`` value), read by Pillow from the image's
  container and parsed with ``defusedxml``.

A declaration is what the file says, not a refusal: the registry records it and offers the holder to file a
refusal where the file declares one. ``EMBEDDED_READ_TABLE`` says which registry purposes each declaration
refuses; ``optout.site_signals.READ_TABLE`` reads site signals with the same keys.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

# The registry's purposes (``optout.models.Purpose`` values: the registry app sits below optout and cannot
# import it; a test holds the two equal).
TRAIN_AI = "train-ai"
TRAIN_GENAI = "train-genai"

C2PA_TRAINING_MINING_LABELS = ("cawg.training-mining", "c2pa.training-mining")
CAWG_USES = ("ai_training", "ai_generative_training", "ai_inference", "data_mining")
CAWG_NOT_ALLOWED = "notAllowed"

PLUS_NAMESPACE = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCABULARY = "http://ns.useplus.org/ldf/vocab/"
RDF_NAMESPACE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

# What each declaration refuses, as the registry's purposes. Mining covers training (TDMRep and the EU's TDM
# exception read it so); inference is not training, so refusing it refuses nothing the registry records.
EMBEDDED_READ_TABLE: Mapping[str, frozenset[str]] = {
    "cawg:ai_training=notAllowed": frozenset({TRAIN_AI, TRAIN_GENAI}),
    "cawg:ai_generative_training=notAllowed": frozenset({TRAIN_GENAI}),
    "cawg:data_mining=notAllowed": frozenset({TRAIN_AI, TRAIN_GENAI}),
    "cawg:ai_inference=notAllowed": frozenset(),
    "iptc:DMI-PROHIBITED": frozenset({TRAIN_AI, TRAIN_GENAI}),
    "iptc:DMI-PROHIBITED-AIMLTRAINING": frozenset({TRAIN_AI, TRAIN_GENAI}),
    "iptc:DMI-PROHIBITED-GENAIMLTRAINING": frozenset({TRAIN_GENAI}),
    "iptc:DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": frozenset({TRAIN_AI, TRAIN_GENAI}),
}

CAWG_USE_LABELS: Mapping[str, Promise] = {
    "ai_training": _("AI training"),
    "ai_generative_training": _("Generative AI training"),
    "ai_inference": _("AI inference"),
    "data_mining": _("Data mining"),
}
CAWG_VALUE_LABELS: Mapping[str, Promise] = {
    "allowed": _("allowed"),
    "notAllowed": _("not allowed"),
    "constrained": _("allowed with constraints"),
}
# The PLUS Data Mining vocabulary (IPTC Photo Metadata 2023.1).
IPTC_DATA_MINING_LABELS: Mapping[str, Promise] = {
    "DMI-UNSPECIFIED": _("unspecified"),
    "DMI-ALLOWED": _("allowed"),
    "DMI-PROHIBITED-AIMLTRAINING": _("prohibited as AI/ML training data"),
    "DMI-PROHIBITED-GENAIMLTRAINING": _("prohibited as generative AI/ML training data"),
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": _("prohibited except for search engine indexing"),
    "DMI-PROHIBITED": _("prohibited"),
    "DMI-SEE-CONSTRAINT": _("see the other constraints"),
    "DMI-SEE-EMBEDDEDRIGHTSEXPR": _("see the embedded rights expression"),
    "DMI-SEE-LINKEDRIGHTSEXPR": _("see the linked rights expression"),
}


@dataclass
class EmbeddedRights:
    """What a file declares: the ``EMBEDDED_READ_TABLE`` keys read, the C2PA and XMP findings, and what could not
    be read (a damaged manifest or packet is recorded, never a reason to fail the fingerprinting)."""

    read: list[str] = field(default_factory=list)
    c2pa: dict[str, Any] | None = None
    xmp: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        refused = purposes_declared(self.read)
        return {
            "read": self.read,
            "said": {purpose: purpose in refused for purpose in (TRAIN_AI, TRAIN_GENAI)},
            "c2pa": self.c2pa,
            "xmp": self.xmp,
            "errors": self.errors,
        }


def purposes_declared(read: list[str]) -> set[str]:
    """The registry purposes that the declarations ``read`` refuse."""
    return set().union(*(EMBEDDED_READ_TABLE.get(key, frozenset()) for key in read)) if read else set()


def refusal_purpose_offered(embedded: Mapping[str, Any]) -> str | None:
    """The purpose a holder is offered to refuse for a file's declarations: the broadest one declared."""
    said = embedded.get("said") or {}
    if said.get(TRAIN_AI):
        return TRAIN_AI
    if said.get(TRAIN_GENAI):
        return TRAIN_GENAI
    return None


def embedded_rights_read(*, file: typing.BinaryIO) -> EmbeddedRights:
    """Read the C2PA training-mining assertion and the XMP ``plus:DataMining`` of ``file`` (any kind of file)."""
    found = EmbeddedRights()
    file.seek(0)
    found.c2pa = _c2pa_read(file, found)
    file.seek(0)
    found.xmp = _xmp_read(file, found)
    return found


# --- C2PA ------------------------------------------------------------------------------------------------


def _c2pa_context() -> Any:
    import c2pa

    # A manifest may point to a remote manifest or a certificate's OCSP responder: the worker fetches neither (a
    # file must not make the registry's workers call arbitrary addresses).
    settings = c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
    return c2pa.Context(settings=settings)


def _c2pa_read(file: typing.BinaryIO, found: EmbeddedRights) -> dict[str, Any] | None:
    import c2pa

    try:
        with c2pa.Reader(None, file, context=_c2pa_context()) as reader:
            manifest = reader.get_active_manifest()
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except (c2pa.C2paError.ManifestNotFound, c2pa.C2paError.NotSupported):
        # No manifest, or a format C2PA does not cover (plain text): nothing declared.
        return None
    except c2pa.C2paError as exc:
        text = str(exc)
        # c2pa-rs names the case only in its message ("Remote: must fetch remote manifests from url …").
        code = "c2pa_remote_manifest_not_fetched" if text.startswith("Remote:") else "c2pa_unreadable"
        found.errors.append(f"{code}: {text[:200]}")
        return None
    if not manifest:
        return None
    assertion = next(
        (a for a in manifest.get("assertions", []) if a.get("label") in C2PA_TRAINING_MINING_LABELS),
        None,
    )
    signature = manifest.get("signature_info") or {}
    failures = [
        str(item.get("code"))
        for item in (results.get("activeManifest") or {}).get("failure", [])
        if isinstance(item, dict)
    ]
    entries: dict[str, str] = {}
    if assertion is not None:
        raw = (assertion.get("data") or {}).get("entries") or {}
        for name, entry in raw.items() if isinstance(raw, dict) else ():
            use = str(name).removeprefix("cawg.").removeprefix("c2pa.")
            value = entry.get("use") if isinstance(entry, dict) else None
            if use in CAWG_USES and isinstance(value, str):
                entries[use] = value
    # In the assertion's defined order, whatever order the manifest's CBOR map keeps.
    entries = {use: entries[use] for use in CAWG_USES if use in entries}
    found.read += [f"cawg:{use}={value}" for use, value in entries.items() if value == CAWG_NOT_ALLOWED]
    return {
        "assertion": assertion.get("label") if assertion else None,
        "entries": entries,
        "signer": {
            "issuer": str(signature.get("issuer") or ""),
            "common_name": str(signature.get("common_name") or ""),
        },
        # Valid: the manifest is intact and its signature verifies; Trusted: and its signer chains to a trust
        # list. The registry has no C2PA trust list configured, so a valid signature's signer is "untrusted".
        "validation_state": state or "",
        "failures": failures,
    }


# --- XMP -------------------------------------------------------------------------------------------------


def _xmp_packet(file: typing.BinaryIO) -> bytes | None:
    """The XMP packet of an image, from its container (JPEG APP1, PNG iTXt, WebP, TIFF), as Pillow reads it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            packet: Any = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
            if packet is None and hasattr(image, "tag_v2"):
                packet = image.tag_v2.get(700)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if isinstance(packet, str):
        return packet.encode()
    if isinstance(packet, tuple):
        packet = bytes(packet)
    return packet if isinstance(packet, bytes) and packet else None


def _xmp_read(file: typing.BinaryIO, found: EmbeddedRights) -> dict[str, Any] | None:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    packet = _xmp_packet(file)
    if packet is None:
        return None
    try:
        # defusedxml refuses entity expansion and external references: the packet is the uploader's bytes.
        root = fromstring(packet.strip(b"\x00 \r\n\t"))
    except (ParseError, DefusedXmlException) as exc:
        found.errors.append(f"xmp_unreadable: {str(exc)[:200]}")
        return None
    mining = _plus_value(root, "DataMining")
    constraints = _plus_value(root, "OtherConstraints")
    if mining is None and constraints is None:
        return {"data_mining": None, "other_constraints": None}
    value = mining.removeprefix(PLUS_VOCABULARY) if mining else None
    if value and f"iptc:{value}" in EMBEDDED_READ_TABLE:
        found.read.append(f"iptc:{value}")
    return {"data_mining": value, "other_constraints": constraints}


def _plus_value(root: Any, name: str) -> str | None:
    """A PLUS property of any ``rdf:Description``: an attribute, a simple element, an ``rdf:resource``, or the
    first item of an ``rdf:Alt``/``rdf:Seq``/``rdf:Bag`` (the language alternatives of OtherConstraints)."""
    qualified = f"{{{PLUS_NAMESPACE}}}{name}"
    for description in root.iter(f"{{{RDF_NAMESPACE}}}Description"):
        if qualified in description.attrib:
            return str(description.attrib[qualified]).strip()
        element = description.find(qualified)
        if element is None:
            continue
        resource = element.attrib.get(f"{{{RDF_NAMESPACE}}}resource")
        if resource:
            return str(resource).strip()
        item = element.find(f".//{{{RDF_NAMESPACE}}}li")
        text = item.text if item is not None else element.text
        return (text or "").strip() or None
    return None
