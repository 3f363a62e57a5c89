"""Fixtures for refusals and lookups: a holder's verified and unverified works, and a clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache

from core.actors import Actor
from registry.services import claim_verify, work_draft_build, work_register


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def register(holder: Any, *identifiers: tuple[str, str], kind: str = "text", share_bp: int = 10000) -> Any:
    draft = work_draft_build(
        title=f"Work {identifiers[0][1]}",
        kind=kind,
        identifiers=[{"scheme": s, "value": v} for s, v in identifiers],
        share_bp=share_bp,
    )
    work, _claim = work_register(actor=Actor(party=holder, is_system=True), holder=holder, draft=draft)
    return work


def verify_claims(work: Any, staff: Any) -> None:
    for claim in work.claims.filter(status="pending"):
        claim_verify(actor=Actor(user=staff), claim=claim)


@pytest.fixture
def book(holder: Any, staff: Any) -> Any:
    """A registered book with a verified owner."""
    work = register(holder, ("isbn", "9788936434021"))
    verify_claims(work, staff)
    return work


def iso(moment: datetime) -> str:
    return moment.isoformat()


def later(seconds: int = 0, **kwargs: Any) -> timedelta:
    return timedelta(seconds=seconds, **kwargs)
