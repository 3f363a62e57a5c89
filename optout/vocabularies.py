"""The one table from what the registry says about a thing to every vocabulary crawlers and files read.

What the registry says about a work, a URL or a path comes down to one of four stances (``Stance``): refused for
any AI training, refused for generative training only, a licence required (its kind is outside the use-first
regime), or use first and compensate later. ``SIGNALS`` maps each stance to each vocabulary, and every header,
robots.txt line, meta tag, TDMRep entry, RSL element and IPTC value the registry emits is read from it
(``optout.signals`` for headers and files, ``compensation.terms`` for the RSL licence and the ODRL policy). A
vocabulary's entry is ``None`` where the registry says nothing in it: silence is not a grant, and the registry
never says "yes" on a holder's behalf in a vocabulary whose "yes" would read as the holder's consent.

The vocabularies and the versions this table follows are ``VOCABULARIES``; when one changes, this table changes
and its tests (``tests/optout/test_signals_vocabularies.py``) say which rows moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from optout.models import Purpose


@dataclass(frozen=True)
class Vocabulary:
    """A vocabulary the registry speaks, with the version its rows follow and where it is defined."""

    key: str
    name: str
    version: str
    reference: str


AIPREF = Vocabulary(
    key="aipref",
    name="IETF AI Preferences (Content-Usage; draft-ietf-aipref-attach for the header and robots.txt rule)",
    # From -05 to -08 the vocabulary has two labels only, train-ai (training a model that generates content) and
    # search; train-genai is no longer a label, and parsers ignore unknown labels.
    version="draft-ietf-aipref-vocab-08",
    reference="https://datatracker.ietf.org/doc/draft-ietf-aipref-vocab/",
)
CONTENT_SIGNALS = Vocabulary(
    key="content-signals",
    name="Content Signals Policy (Cloudflare; Content-Signal in a robots.txt group)",
    version="2025-09",
    reference="https://contentsignals.org/",
)
RSL = Vocabulary(
    key="rsl",
    name="Really Simple Licensing",
    version="RSL 1.0 (RSL-SPEC-1.0, Recommendation, 2025-11-06)",
    reference="https://rslstandard.org/rsl",
)
TDMREP = Vocabulary(
    key="tdmrep",
    name="W3C TDM Reservation Protocol (TDMRep)",
    version="Final Community Group Report, 2024-05-10",
    reference="https://www.w3.org/community/reports/tdmrep/CG-FINAL-tdmrep-20240510/",
)
X_ROBOTS_TAG = Vocabulary(
    key="x-robots-tag",
    name="noai / noimageai directives (X-Robots-Tag header and robots meta tag)",
    version="DeviantArt and Spawning, 2022-11 (read by datadiligence and img2dataset)",
    reference="https://github.com/spawning-ai/datadiligence",
)
IPTC = Vocabulary(
    key="iptc",
    name="IPTC Photo Metadata / PLUS Data Mining (plus:DataMining)",
    version="IPTC Photo Metadata Standard 2023.1; PLUS LDF vocabulary DMI-*",
    reference="https://iptc.org/std/photometadata/specification/IPTC-PhotoMetadata#data-mining",
)
VOCABULARIES: tuple[Vocabulary, ...] = (AIPREF, CONTENT_SIGNALS, RSL, TDMREP, X_ROBOTS_TAG, IPTC)

# The PLUS vocabulary of plus:DataMining values (IPTC Photo Metadata 2023.1).
IPTC_DATA_MINING = "http://ns.useplus.org/ldf/vocab/"


class Stance(StrEnum):
    """What the registry says about a thing, as far as the web's vocabularies can say it."""

    REFUSED_TRAIN_AI = "refused:train-ai"
    REFUSED_TRAIN_GENAI = "refused:train-genai"
    LICENSE_REQUIRED = "license_required"
    USE_FIRST = "use_first"


@dataclass(frozen=True)
class Signals:
    """One stance in every vocabulary. ``None`` (or empty) says nothing in that vocabulary."""

    # aipref: (label, value), e.g. ("train-ai", "n"): the Content-Usage header and robots.txt rule.
    aipref: tuple[str, str] | None
    # Content Signals: (signal, value), e.g. ("ai-train", "no").
    content_signal: tuple[str, str] | None
    # RSL 1.0 <permits type="usage"> and <prohibits type="usage"> tokens.
    rsl_permits: str | None
    rsl_prohibits: str | None
    # RSL <payment type="..."> when the usage is permitted against payment.
    rsl_payment: str | None
    # TDMRep tdm-reservation (1 reserves) and whether a tdm-policy (an ODRL offer) goes with it.
    tdm_reservation: int | None
    tdm_policy: bool
    # X-Robots-Tag / <meta name="robots"> directives.
    x_robots_tag: tuple[str, ...]
    # IPTC plus:DataMining value (a PLUS vocabulary URI).
    iptc_data_mining: str


SIGNALS: Mapping[Stance, Signals] = {
    # Either refusal purpose is aipref's one training label (-08: train-ai is training a model that generates
    # content, so a generative-only refusal is exactly it) and Content Signals' ai-train.
    Stance.REFUSED_TRAIN_AI: Signals(
        aipref=("train-ai", "n"),
        content_signal=("ai-train", "no"),
        rsl_permits=None,
        rsl_prohibits="ai-train",
        rsl_payment=None,
        tdm_reservation=1,
        # Nothing is offered: the holder refused, the registry has no licence to point to.
        tdm_policy=False,
        x_robots_tag=("noai", "noimageai"),
        iptc_data_mining=IPTC_DATA_MINING + "DMI-PROHIBITED-AIMLTRAINING",
    ),
    Stance.REFUSED_TRAIN_GENAI: Signals(
        aipref=("train-ai", "n"),
        content_signal=("ai-train", "no"),
        rsl_permits=None,
        rsl_prohibits="ai-train",
        rsl_payment=None,
        tdm_reservation=1,
        tdm_policy=False,
        x_robots_tag=("noai", "noimageai"),
        # IPTC alone can say "generative only".
        iptc_data_mining=IPTC_DATA_MINING + "DMI-PROHIBITED-GENAIMLTRAINING",
    ),
    # Reserved, but licensable: TDMRep's reservation with a policy saying on what terms; RSL permits training
    # against payment once licensed. No aipref or Content Signals "no": the holder has not refused.
    Stance.LICENSE_REQUIRED: Signals(
        aipref=None,
        content_signal=None,
        rsl_permits="ai-train",
        rsl_prohibits=None,
        rsl_payment="training",
        tdm_reservation=1,
        tdm_policy=True,
        x_robots_tag=(),
        iptc_data_mining=IPTC_DATA_MINING + "DMI-SEE-LINKEDRIGHTSEXPR",
    ),
    # Not reserved: a TDMRep reservation would tell crawlers the opposite of "permitted". The terms (the tariff in
    # force, where to report use) are in the RSL licence.
    Stance.USE_FIRST: Signals(
        aipref=None,
        content_signal=None,
        rsl_permits="ai-train",
        rsl_prohibits=None,
        rsl_payment="training",
        tdm_reservation=None,
        tdm_policy=False,
        x_robots_tag=(),
        iptc_data_mining=IPTC_DATA_MINING + "DMI-SEE-LINKEDRIGHTSEXPR",
    ),
}

REFUSAL_STANCES: Mapping[str, Stance] = {
    Purpose.TRAIN_AI: Stance.REFUSED_TRAIN_AI,
    Purpose.TRAIN_GENAI: Stance.REFUSED_TRAIN_GENAI,
}


def stance_for(*, refused_train_ai: bool, refused_train_genai: bool, license_required: bool) -> Stance:
    """The stance of a thing: the broader refusal first, then the regime of its kind."""
    if refused_train_ai:
        return Stance.REFUSED_TRAIN_AI
    if refused_train_genai:
        return Stance.REFUSED_TRAIN_GENAI
    return Stance.LICENSE_REQUIRED if license_required else Stance.USE_FIRST


# --- Rendering the table's values -------------------------------------------------------------------------


def aipref_value(stances: set[Stance] | frozenset[Stance]) -> str | None:
    """The aipref usage preferences (``train-ai=n``) of some stances that hold together, or ``None``."""
    prefs = sorted({pref for stance in stances if (pref := SIGNALS[stance].aipref) is not None})
    return ", ".join(f"{label}={value}" for label, value in prefs) or None


def content_signal_value(stances: set[Stance] | frozenset[Stance]) -> str | None:
    """The Content Signals value (``ai-train=no``) of some stances that hold together, or ``None``."""
    signals = sorted({sig for stance in stances if (sig := SIGNALS[stance].content_signal) is not None})
    return ", ".join(f"{name}={value}" for name, value in signals) or None


def x_robots_value(stance: Stance) -> str | None:
    return ", ".join(SIGNALS[stance].x_robots_tag) or None


def headers_for(*, stance: Stance, tdm_policy_url: str | None = None, license_url: str | None = None) -> dict[str, str]:
    """The HTTP response headers of a thing in ``stance``.

    - ``tdm-reservation`` (and ``tdm-policy`` where the row offers one and ``tdm_policy_url`` is given);
    - ``X-Robots-Tag``; ``Content-Usage`` (aipref);
    - ``Link: <license_url>; rel="license"; type="application/rsl+xml"`` when ``license_url`` is given.
    Content Signals are a robots.txt directive only, so they have no header.
    """
    row = SIGNALS[stance]
    headers: dict[str, str] = {}
    if row.tdm_reservation is not None:
        headers["tdm-reservation"] = str(row.tdm_reservation)
        if row.tdm_policy and tdm_policy_url:
            headers["tdm-policy"] = tdm_policy_url
    if robots := x_robots_value(stance):
        headers["X-Robots-Tag"] = robots
    if usage := aipref_value({stance}):
        headers["Content-Usage"] = usage
    if license_url:
        headers["Link"] = f'<{license_url}>; rel="license"; type="{RSL_MEDIA_TYPE}"'
    return headers


def meta_tags_for(*, stance: Stance, tdm_policy_url: str | None = None) -> list[tuple[str, str]]:
    """``<meta name=… content=…>`` pairs for an HTML page of a thing in ``stance`` (TDMRep's HTML form and robots)."""
    row = SIGNALS[stance]
    tags: list[tuple[str, str]] = []
    if robots := x_robots_value(stance):
        tags.append(("robots", robots))
    if row.tdm_reservation is not None:
        tags.append(("tdm-reservation", str(row.tdm_reservation)))
        if row.tdm_policy and tdm_policy_url:
            tags.append(("tdm-policy", tdm_policy_url))
    return tags


RSL_NAMESPACE = "https://rslstandard.org/rsl"
RSL_MEDIA_TYPE = "application/rsl+xml"

XMP_MEDIA_TYPE = "application/rdf+xml"
_XMP_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}


def xmp_packet_for(*, stance: Stance, license_url: str | None = None) -> bytes:
    """An XMP sidecar stating the row's IPTC ``plus:DataMining``, for a publisher to write into a work's files
    (``exiftool -tagsfromfile rights.xmp -xmp:all photo.jpg``). With ``license_url``, the RSL licence as IPTC's
    Linked Encoded Rights Expression, which ``DMI-SEE-LINKEDRIGHTSEXPR`` points readers to."""
    from xml.etree import ElementTree as ET

    def q(prefix: str, name: str) -> str:
        return f"{{{_XMP_NAMESPACES[prefix]}}}{name}"

    for prefix, uri in _XMP_NAMESPACES.items():
        ET.register_namespace(prefix, uri)
    meta = ET.Element(q("x", "xmpmeta"))
    rdf = ET.SubElement(meta, q("rdf", "RDF"))
    description = ET.SubElement(rdf, q("rdf", "Description"), {q("rdf", "about"): ""})
    ET.SubElement(description, q("plus", "DataMining")).text = SIGNALS[stance].iptc_data_mining
    if license_url:
        bag = ET.SubElement(ET.SubElement(description, q("Iptc4xmpExt", "LinkedEncRightsExpr")), q("rdf", "Bag"))
        item = ET.SubElement(bag, q("rdf", "li"), {q("rdf", "parseType"): "Resource"})
        ET.SubElement(item, q("Iptc4xmpExt", "LinkedRightsExpr")).text = license_url
        ET.SubElement(item, q("Iptc4xmpExt", "RightsExprEncType")).text = RSL_MEDIA_TYPE
    ET.indent(meta, space=" ")
    # The packet wrapper lets tools find the packet in a file's bytes; "r": read-only, written once.
    body = ET.tostring(meta, encoding="unicode")
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n<?xpacket end="r"?>\n'.encode()
