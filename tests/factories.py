"""factory_boy factories for the objects tests build again and again.

Parties, works, claims, refusals and tariffs are made through their services, never as bare rows: the services
write the audit events, memberships and ownership invariants the rest of the code relies on. Only a user is
a plain row (Django's ``create_user``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from compensation.models import PayoutProfile, Tariff
from compensation.payouts.services import PayoutDetails, payout_profile_set, payout_profile_verify
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from optout.models import Refusal
from optout.services import refusal_file
from registry.models import MAX_SHARE_BP, ApiKey, ClaimStatus, OwnershipClaim, Party, Work
from registry.services import apikey_create, claim_file, claim_verify, party_create, work_draft_build, work_register

PASSWORD = "correct-horse-battery"


def isbn(n: int) -> str:
    """A valid ISBN-13 in the Korean group (978-89), numbered ``n``."""
    body = f"97889{n:07d}"
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def verify_claims(work: Work, staff: Any) -> None:
    """Staff verify every pending claim on ``work``."""
    for claim in work.claims.filter(status=ClaimStatus.PENDING):
        claim_verify(actor=Actor(user=staff), claim=claim)


class UserFactory(factory.django.DjangoModelFactory):
    """A person who can sign in with ``PASSWORD``; the username is the email address."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"person{n}@example.test")
    email = factory.SelfAttribute("username")
    is_staff = False

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return model_class.objects.create_user(*args, password=PASSWORD, **kwargs)


class StaffUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}@registry.example")
    is_staff = True


class PartyFactory(factory.Factory):
    """A rights holder (or, with ``kind="lab"``, an AI lab) whose ``owner`` is its first member."""

    class Meta:
        model = Party

    kind = "holder"
    name = factory.Sequence(lambda n: f"Party {n}")
    owner = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class: Any, *, kind: str, name: str, owner: Any) -> Party:
        return party_create(actor=Actor.system(), kind=kind, name=name, owner=owner)


class HolderFactory(PartyFactory):
    kind = "holder"
    name = factory.Sequence(lambda n: f"Holder {n}")


class LabFactory(PartyFactory):
    kind = "lab"
    name = factory.Sequence(lambda n: f"Lab {n}")


class SocietyFactory(PartyFactory):
    """A collecting society or agent: acts for member parties under mandates."""

    kind = "society"
    name = factory.Sequence(lambda n: f"Society {n}")


class ApiKeyFactory(factory.Factory):
    """A party's API key (or a staff user's, with ``staff_user=``); the raw secret is on ``.raw``."""

    class Meta:
        model = ApiKey

    party = None
    staff_user = None
    scopes: Sequence[str] = ("lookup",)

    @classmethod
    def _create(cls, model_class: Any, *, party: Party | None, staff_user: Any, scopes: Sequence[str]) -> ApiKey:
        key, raw = apikey_create(actor=Actor.system(), party=party, staff_user=staff_user, scopes=list(scopes))
        # The service shows the raw secret once; the test needs it to present the key.
        key.raw = raw  # type: ignore[attr-defined]
        return key


class WorkFactory(factory.Factory):
    """A work ``holder`` registered through ``work_register``, with a pending claim to ``share_bp``.

    ``identifiers`` are ``(scheme, value)`` pairs; with ``verified_by=<staff user>`` the claim is verified.
    """

    class Meta:
        model = Work

    holder = factory.SubFactory(HolderFactory)
    identifiers = factory.Sequence(lambda n: [("isbn", isbn(900_000 + n))])
    kind = "text"
    share_bp = MAX_SHARE_BP
    title = factory.LazyAttribute(lambda o: f"Work {o.identifiers[0][1]}")
    creators: Sequence[str] = ()
    verified_by = None

    @classmethod
    def _create(
        cls,
        model_class: Any,
        *,
        holder: Party,
        identifiers: Sequence[tuple[str, str]],
        kind: str,
        share_bp: int,
        title: str,
        creators: Sequence[str],
        verified_by: Any,
    ) -> Work:
        draft = work_draft_build(
            title=title,
            kind=kind,
            creators=creators,
            identifiers=[{"scheme": scheme, "value": value} for scheme, value in identifiers],
            share_bp=share_bp,
        )
        work, _claim = work_register(actor=Actor(party=holder, is_system=True), holder=holder, draft=draft)
        if verified_by is not None:
            verify_claims(work, verified_by)
        return work


class ClaimFactory(factory.Factory):
    """Another holder's claim to a share of an existing work, filed through ``claim_file``; verified with
    ``verified_by=<staff user>``."""

    class Meta:
        model = OwnershipClaim

    work = factory.SubFactory(WorkFactory)
    holder = factory.SubFactory(HolderFactory)
    share_bp = MAX_SHARE_BP
    verified_by = None

    @classmethod
    def _create(cls, model_class: Any, *, work: Work, holder: Party, share_bp: int, verified_by: Any) -> OwnershipClaim:
        claim = claim_file(actor=Actor(party=holder), work=work, holder=holder, share_bp=share_bp)
        if verified_by is not None:
            claim = claim_verify(actor=Actor(user=verified_by), claim=claim)
        return claim


class RefusalFactory(factory.Factory):
    """The holder of ``work`` refuses AI training of it, through ``refusal_file`` (which records its event)."""

    class Meta:
        model = Refusal

    work = factory.SubFactory(WorkFactory)
    holder = factory.LazyAttribute(lambda o: o.work.claims.get().holder)
    scope = "work"
    purposes: Sequence[str] = ("train-ai",)
    effective_from = None

    @classmethod
    def _create(
        cls,
        model_class: Any,
        *,
        work: Work,
        holder: Party,
        scope: str,
        purposes: Sequence[str],
        effective_from: datetime | None,
    ) -> Refusal:
        return refusal_file(
            actor=Actor(party=holder),
            holder=holder,
            scope=scope,
            purposes=list(purposes),
            work=work,
            effective_from=effective_from,
        )


class TariffFactory(factory.Factory):
    """A rate in KRW per unit for a kind of work, set through ``tariff_set``.

    Backdated by default: before the first tariff of its kind and unit, which ``tariff_set`` allows, so uses
    reported as of yesterday are priced.
    """

    class Meta:
        model = Tariff

    kind = "text"
    unit = "token"
    rate_krw = Decimal("0.0005")
    effective_from = factory.LazyFunction(lambda: timezone.now() - timedelta(days=400))
    set_by = None  # a staff user; the system when None

    @classmethod
    def _create(
        cls,
        model_class: Any,
        *,
        kind: str,
        unit: str,
        rate_krw: Decimal | int | str,
        effective_from: datetime | None,
        set_by: Any,
    ) -> Tariff:
        actor = Actor.system() if set_by is None else Actor(user=set_by)
        return tariff_set(actor=actor, kind=kind, unit=unit, rate_krw=rate_krw, effective_from=effective_from)


# A valid business registration number and a valid resident registration number (check digits per python-stdnum).
VALID_BRN = "1208147521"
VALID_RRN = "9001011234568"


def payout_profile(
    holder: Party,
    *,
    verified_by: Any = None,
    tax_status: str = "corporation",
    account_number: str = "110-234-567890",
) -> PayoutProfile:
    """A payout profile set through the service as the holder itself, verified by ``verified_by`` (staff) if given.
    Individuals get a resident registration number, corporations a business one."""
    details = PayoutDetails(
        payee_name=f"{holder.name} (legal)",
        bank_name="Shinhan Bank",
        account_number=account_number,
        tax_id_kind="rrn" if tax_status == "individual" else "brn",
        tax_id=VALID_RRN if tax_status == "individual" else VALID_BRN,
        tax_status=tax_status,
    )
    profile = payout_profile_set(actor=Actor(party=holder), holder=holder, details=details)
    if verified_by is not None:
        profile = payout_profile_verify(actor=Actor(user=verified_by), profile_id=profile.pk)
    return profile
