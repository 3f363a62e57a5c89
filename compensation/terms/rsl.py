"""RSL 1.0 licences (Really Simple Licensing, RSL-SPEC-1.0): what a crawler may do with a work or a site's pages,
and on what payment terms.

- Refused content: ``<prohibits type="usage">ai-train</prohibits>``.
- Use-first content: ``<permits type="usage">ai-train</permits>`` with one ``<license>`` per tariff in force, its
  ``<payment type="training">`` stating the rate as ``<amount currency="KRW">`` per one unit; ``<standard>`` is the
  rate-card entry of that kind and unit (the ODRL offer, ``…/terms/{kind}.jsonld#{unit}``, which names the unit)
  and ``<custom>`` is where use is reported (the usage-manifest endpoint).
- Licence-required kinds: training is permitted only under a licence from the owners; the ``<payment>`` has no
  amount and points to the kind's offer, which says so.

Tokens come from ``optout.vocabularies.SIGNALS``; the XML is checked against a schema written from the
specification's text (``tests/compensation/rsl-1.0.xsd``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from compensation.terms.selectors import KindTerms, rate_text
from optout.vocabularies import RSL_NAMESPACE, SIGNALS, Stance


@dataclass(frozen=True)
class TermsLinks:
    """The absolute URLs a licence points to, built by the view from the request."""

    policy: Callable[[str], str]  # a kind's ODRL offer (rate card)
    usage_report: str  # where a lab reports its use (the usage-manifest endpoint)
    terms: str | None = None  # a human-readable page about the content (the work's public page)


@dataclass(frozen=True)
class Content:
    """One ``<content>`` of a licence: a URL (or RFC 9309 path pattern) and what the registry says about it."""

    url: str
    stance: Stance
    kinds: Sequence[KindTerms]  # the kinds whose terms apply (one for a work; every kind for a site's pages)
    terms: str | None = None


def _licenses(content: Content, links: TermsLinks) -> list[ET.Element]:
    row = SIGNALS[content.stance]
    licenses: list[ET.Element] = []
    if row.rsl_prohibits:
        license_ = ET.Element("license")
        ET.SubElement(license_, "prohibits", type="usage").text = row.rsl_prohibits
        return [license_]
    if not row.rsl_permits:
        return licenses
    for kind in content.kinds:
        # A kind outside the use-first regime offers no price here: training needs the owners' licence.
        licensed = kind.license_required or content.stance == Stance.LICENSE_REQUIRED
        rates = () if licensed else kind.rates
        for rate in rates or (None,):
            license_ = ET.Element("license")
            ET.SubElement(license_, "permits", type="usage").text = row.rsl_permits
            payment = ET.SubElement(license_, "payment", type=row.rsl_payment or "training")
            policy = links.policy(kind.kind)
            ET.SubElement(payment, "standard").text = f"{policy}#{rate.unit}" if rate else policy
            if not licensed:
                # Where use is reported; a licence-required kind is reported under the owners' licence instead.
                ET.SubElement(payment, "custom").text = links.usage_report
            if rate is not None:
                ET.SubElement(payment, "amount", currency="KRW").text = rate_text(rate.rate_krw)
            licenses.append(license_)
    return licenses


def rsl_document(*, contents: Sequence[Content], links: TermsLinks) -> bytes:
    """The RSL 1.0 XML document (UTF-8, with its declaration) for ``contents``, in order."""
    root = ET.Element("rsl", xmlns=RSL_NAMESPACE)
    for content in contents:
        element = ET.SubElement(root, "content", url=content.url)
        licenses = _licenses(content, links)
        element.extend(licenses)
        if content.terms:
            ET.SubElement(element, "terms").text = content.terms
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode() + b"\n"
