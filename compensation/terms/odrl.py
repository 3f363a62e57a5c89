"""A work kind's terms as an ODRL 2.2 offer under the TDMRep profile (the document ``tdm-policy`` points to).

One ``permission`` to mine (``tdm:mine``) per tariff in force, each with a ``compensate`` duty whose ``payAmount``
is the rate in KRW for one unit (``unitOfCount``) and an ``inform`` duty: report the use to the registry (the
usage-manifest endpoint). A kind under the licence-required regime adds ``obtainConsent``: the owners' licence
comes first. Each permission's ``uid`` is ``…/terms/{kind}.jsonld#{unit}``, the anchor an RSL ``<standard>`` names.
"""

from __future__ import annotations

from typing import Any

from compensation.terms.selectors import KindTerms, rate_text

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
TDMREP_PROFILE = "http://www.w3.org/ns/tdmrep"
TDMREP_NAMESPACE = "http://www.w3.org/ns/tdmrep#"
# IPTC's ISO 4217 code list, which TDMRep's policy examples use for payAmount's unit.
CURRENCY_KRW = "http://cvx.iptc.org/iso4217a/KRW"


def odrl_offer(*, terms: KindTerms, uid: str, assigner: str, usage_report: str) -> dict[str, Any]:
    """The ODRL offer (JSON-LD) of ``terms``, identified by ``uid`` (the URL it is served at)."""
    duties: list[dict[str, Any]] = []
    if terms.license_required:
        duties.append({"action": "obtainConsent"})
    duties.append({"action": "inform", "informedParty": assigner, "dct:references": usage_report})
    permissions: list[dict[str, Any]] = []
    for rate in terms.rates:
        compensate = {
            "action": "compensate",
            "constraint": [
                {
                    "leftOperand": "payAmount",
                    "operator": "eq",
                    "rightOperand": {"@value": rate_text(rate.rate_krw), "@type": "xsd:decimal"},
                    "unit": CURRENCY_KRW,
                }
            ],
        }
        permissions.append(
            {
                "uid": f"{uid}#{rate.unit}",
                "target": f"{uid}#works",
                "action": "tdm:mine",
                "constraint": [{"leftOperand": "unitOfCount", "operator": "eq", "rightOperand": rate.unit}],
                "duty": [compensate, *duties],
            }
        )
    if not permissions:
        # No tariff in force: mining is still offered (use-first) or licensable, priced once a tariff is set.
        permissions.append({"uid": f"{uid}#unpriced", "target": f"{uid}#works", "action": "tdm:mine", "duty": duties})
    return {
        "@context": [ODRL_CONTEXT, {"tdm": TDMREP_NAMESPACE}],
        "@type": "Offer",
        "uid": uid,
        "profile": TDMREP_PROFILE,
        "assigner": assigner,
        "permission": permissions,
    }
