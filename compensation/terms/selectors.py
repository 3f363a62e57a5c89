"""Reads behind the terms: each work kind's regime and the tariffs in force for it, at one instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from compensation.models import UsageUnit
from compensation.usage.selectors import tariffs_in_force
from optout.models import Regime
from optout.signals import regimes_in_force
from registry.models import WorkKind


@dataclass(frozen=True)
class Rate:
    """A tariff in force: KRW per one ``unit``, since ``effective_from``."""

    unit: str
    rate_krw: Decimal
    effective_from: datetime


@dataclass(frozen=True)
class KindTerms:
    """What using a work of ``kind`` costs at an instant: its regime and the rates in force (one per unit)."""

    kind: str
    regime: str
    rates: tuple[Rate, ...]

    @property
    def license_required(self) -> bool:
        return self.regime == Regime.LICENSE_REQUIRED


def terms_in_force(*, at: datetime, kinds: list[str] | None = None) -> dict[str, KindTerms]:
    """Per work kind (all, or ``kinds``), its regime and the tariffs in force at ``at``. Two queries."""
    kinds = kinds or list(WorkKind.values)
    regimes = regimes_in_force(at=at)
    tariffs = tariffs_in_force(pairs=[(kind, unit) for kind in kinds for unit in UsageUnit.values], at=at)
    terms: dict[str, KindTerms] = {}
    for kind in kinds:
        rates = tuple(
            Rate(unit=unit, rate_krw=tariff.rate_krw, effective_from=tariff.effective_from)
            for unit in UsageUnit.values
            if (tariff := tariffs.get((kind, unit))) is not None
        )
        terms[kind] = KindTerms(kind=kind, regime=regimes[kind], rates=rates)
    return terms


def rate_text(rate: Decimal) -> str:
    """A rate as an exact decimal without trailing zeros (``0.0005``, ``3``), never in exponent form."""
    text = format(rate.normalize(), "f")
    return text
