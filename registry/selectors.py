"""Reads from the registry. Set-based: a list costs a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils.translation import get_language

from core.actors import Actor
from core.errors import NotFound
from registry.errors import InvalidIdentifier
from registry.identifiers import identifier_normalize
from registry.models import (
    MAX_SHARE_BP,
    ApiKey,
    AuditEvent,
    ClaimDefaultShare,
    ClaimEvidence,
    ClaimStatus,
    Identifier,
    Membership,
    OwnershipClaim,
    Party,
    PartyKind,
    VerifiedDomain,
    Work,
    WorkFile,
    WorkImport,
    WorkImportRowError,
)
from registry.search import search_query_clean, work_search_ids


def party_for_user(*, user_id: int, party_id: int | None = None) -> Party | None:
    """The party a signed-in person acts for: the one named, or their only one."""
    memberships = Membership.objects.filter(user_id=user_id).select_related("party")
    if party_id is not None:
        membership = memberships.filter(party_id=party_id).first()
        return membership.party if membership else None
    first_two = list(memberships[:2])
    return first_two[0].party if len(first_two) == 1 else None


def _works_with_details() -> QuerySet[Work]:
    return Work.objects.prefetch_related(
        Prefetch("identifiers", queryset=Identifier.objects.order_by("scheme", "value")),
        Prefetch("claims", queryset=OwnershipClaim.objects.select_related("holder").order_by("created_at", "pk")),
        Prefetch("files", queryset=WorkFile.objects.order_by("-created_at", "-pk")),
        "contributors",
    )


def work_list_for_holder(
    *, holder: Party, kind: str | None = None, status: str | None = None, identifier: str | None = None
) -> QuerySet[Work]:
    """Works the holder has a live claim on; ``identifier`` is ``scheme:value`` in any spelling."""
    live_claim = OwnershipClaim.objects.filter(work=OuterRef("pk"), holder=holder).exclude(status=ClaimStatus.REJECTED)
    works = _works_with_details().filter(Exists(live_claim))
    if kind:
        works = works.filter(kind=kind)
    if status:
        works = works.filter(status=status)
    if identifier:
        scheme, _sep, value = identifier.partition(":")
        try:
            key = identifier_normalize(scheme=scheme, value=value)
        except InvalidIdentifier as exc:
            exc.field = "identifier"
            raise
        works = works.filter(identifiers__scheme=key.scheme, identifiers__value=key.value)
    return works.order_by("-created_at", "-pk")


def work_get_for_actor(*, actor: Actor, work_id: int) -> Work:
    """A work its claimant or staff may see in full; anyone else gets NotFound (no existence leak)."""
    works = _works_with_details().filter(pk=work_id)
    if not actor.is_staff:
        if actor.party is None:
            raise NotFound()
        # An agent acting for a member (its mandate checked when the actor was made) sees the member's works.
        holder = actor.on_behalf_of or actor.party
        works = works.filter(
            Exists(
                OwnershipClaim.objects.filter(work=OuterRef("pk"), holder=holder).exclude(status=ClaimStatus.REJECTED)
            )
        )
    work = works.first()
    if work is None:
        raise NotFound()
    return work


def work_file_get_for_actor(*, actor: Actor, work_id: int, file_id: int) -> WorkFile:
    """A file of a work the actor may see in full (``work_get_for_actor``)."""
    work = work_get_for_actor(actor=actor, work_id=work_id)
    work_file = WorkFile.objects.filter(pk=file_id, work=work).first()
    if work_file is None:
        raise NotFound()
    return work_file


def work_get(*, work_id: int) -> Work:
    work = Work.objects.filter(pk=work_id).first()
    if work is None:
        raise NotFound()
    return work


def works_get(*, work_ids: Iterable[int]) -> list[Work]:
    """The works with these ids, in one query; NotFound names the first missing one."""
    wanted = list(dict.fromkeys(work_ids))
    found = {work.pk: work for work in Work.objects.filter(pk__in=wanted)}
    missing = next((pk for pk in wanted if pk not in found), None)
    if missing is not None:
        raise NotFound(extra={"work_id": missing})
    return [found[pk] for pk in wanted]


def party_get(*, party_id: int) -> Party:
    party = Party.objects.filter(pk=party_id).first()
    if party is None:
        raise NotFound()
    return party


def work_ids_claimable(*, party: Party | None, work_ids: Iterable[int]) -> set[int]:
    """Which of ``work_ids`` ``party`` may still claim a share of: a rights holder with no claim on them but
    rejected ones (the rule ``claim_file`` applies). One query, whatever the number of works."""
    wanted = set(work_ids)
    if party is None or party.kind != PartyKind.HOLDER or not wanted:
        return set()
    claimed = (
        OwnershipClaim.objects.filter(holder=party, work_id__in=wanted)
        .exclude(status=ClaimStatus.REJECTED)
        .values_list("work_id", flat=True)
    )
    return wanted - set(claimed)


def claim_list_for_actor(
    *, actor: Actor, status: str | None = None, work_id: int | None = None
) -> QuerySet[OwnershipClaim]:
    """Staff see every claim (the verification queue); holders their own."""
    claims = OwnershipClaim.objects.select_related("work", "holder").order_by("created_at", "pk")
    if not actor.is_staff:
        if actor.party is None:
            return claims.none()
        claims = claims.filter(holder=actor.party)
    if status:
        claims = claims.filter(status=status)
    if work_id is not None:
        claims = claims.filter(work_id=work_id)
    return claims


def claim_get_for_actor(*, actor: Actor, claim_id: int) -> OwnershipClaim:
    claim = claim_list_for_actor(actor=actor).filter(pk=claim_id).first()
    if claim is None:
        raise NotFound()
    return claim


def domain_list_for_actor(*, actor: Actor) -> QuerySet[VerifiedDomain]:
    domains = VerifiedDomain.objects.select_related("holder").order_by("-created_at", "-pk")
    if actor.is_staff:
        return domains
    if actor.party is None:
        return domains.none()
    return domains.filter(holder=actor.party)


def domain_get_for_actor(*, actor: Actor, domain_id: int) -> VerifiedDomain:
    domain = domain_list_for_actor(actor=actor).filter(pk=domain_id).first()
    if domain is None:
        raise NotFound()
    return domain


def work_import_get_for_actor(*, actor: Actor, import_id: int) -> WorkImport:
    imports = WorkImport.objects.filter(pk=import_id)
    if not actor.is_staff:
        if actor.party is None:
            raise NotFound()
        # The member sees its imports, and the society or agent the ones it uploaded for its members.
        imports = imports.filter(Q(holder=actor.party) | Q(agent=actor.party))
    work_import = imports.first()
    if work_import is None:
        raise NotFound()
    return work_import


def work_import_errors(*, work_import: WorkImport) -> QuerySet[WorkImportRowError]:
    return work_import.row_errors.order_by("row", "pk")


IMPORT_ERROR_COLUMNS = ("row", "field", "code", "message", "existing_work")


def work_import_error_rows(*, errors: QuerySet[WorkImportRowError]) -> Iterator[list[object]]:
    """A bulk import's row errors as the rows of its CSV file, the header first."""
    yield list(IMPORT_ERROR_COLUMNS)
    for error in errors.iterator(chunk_size=2000):
        yield [error.row, error.field, error.code, error.message, error.existing_work_id]


def apikey_list_for_actor(*, actor: Actor) -> QuerySet[ApiKey]:
    if actor.party is not None:
        return ApiKey.objects.filter(party=actor.party)
    if actor.is_staff and actor.user_id is not None:
        return ApiKey.objects.filter(party__isnull=True, user_id=actor.user_id)
    return ApiKey.objects.none()


def apikey_get_for_actor(*, actor: Actor, key_id: int) -> ApiKey:
    key = apikey_list_for_actor(actor=actor).filter(pk=key_id).first()
    if key is None:
        raise NotFound()
    return key


def registry_name(*, language: str | None = None) -> str:
    """The registry's display name in ``language`` (the active one by default): ``REGISTRY_NAME_KO`` for
    Korean, ``REGISTRY_NAME`` for every other language."""
    code = (language or get_language() or settings.LANGUAGE_CODE).lower()
    if code == "ko" or code.startswith("ko-"):
        return str(settings.REGISTRY_NAME_KO)
    return str(settings.REGISTRY_NAME)


def registry_figures() -> dict[str, object]:
    """Public figures for the home page: counts and the latest works (titles and kinds only)."""
    return {
        "works_count": Work.objects.count(),
        "verified_count": Work.objects.filter(status="verified").count(),
        "holders_count": Party.objects.filter(kind="holder").count(),
        "labs_count": Party.objects.filter(kind="lab").count(),
        "recent_works": list(Work.objects.order_by("-created_at", "-pk")[:10]),
    }


# --- Portal reads -------------------------------------------------------------------------------


def membership_list_for_user(*, user_id: int) -> QuerySet[Membership]:
    """The parties a person belongs to, oldest membership first (the default party)."""
    return Membership.objects.filter(user_id=user_id).select_related("party").order_by("created_at", "pk")


def membership_list_for_party(*, party: Party) -> QuerySet[Membership]:
    return Membership.objects.filter(party=party).select_related("user").order_by("created_at", "pk")


class WorksInOrder(Sequence[Work]):
    """Works by a list of ids, in that order (a search's ranking). A slice reads only its own works, with their
    identifiers and claims, so a page of a thousand results costs the same few queries as any page."""

    def __init__(self, ids: Sequence[int], works: QuerySet[Work] | None = None) -> None:
        self.ids = list(ids)
        self.works = works if works is not None else _works_with_details()

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Work: ...

    @overload
    def __getitem__(self, index: slice) -> list[Work]: ...

    def __getitem__(self, index: int | slice) -> Work | list[Work]:
        if isinstance(index, slice):
            wanted = self.ids[index]
            found = {work.pk: work for work in self.works.filter(pk__in=wanted)}
            return [found[pk] for pk in wanted if pk in found]
        return self[index : index + 1 if index != -1 else None][0]


def work_search(*, query: str) -> WorksInOrder:
    """Every registered work ``query`` finds, best first (``registry.search``); ``query`` must be cleaned."""
    return WorksInOrder(work_search_ids(query=query))


def work_search_for_holder(*, holder: Party, query: str = "", **filters: str | None) -> QuerySet[Work] | WorksInOrder:
    """The holder's works (``work_list_for_holder``'s filters apply); with ``query``, those it finds, best first.

    A query that is empty after trimming lists them all, newest first.
    """
    works = work_list_for_holder(holder=holder, **filters)
    if not query.strip():
        return works
    ids = work_search_ids(query=search_query_clean(query), holder_id=holder.pk)
    if any(filters.values()):
        kept = set(works.filter(pk__in=ids).values_list("pk", flat=True))
        ids = [pk for pk in ids if pk in kept]
    return WorksInOrder(ids)


def audit_events_for_party(*, party: Party, limit: int = 20) -> list[AuditEvent]:
    """Recent changes made by the party's people and keys, or made by others to its works and claims."""
    return list(
        AuditEvent.objects.select_related("actor_party", "on_behalf_of")
        .filter(Q(actor_party=party) | Q(data__holder=party.pk) | Q(on_behalf_of=party))
        .order_by("-created_at", "-pk")[:limit]
    )


def work_licensing_contacts(*, work: Work) -> list[dict[str, str]]:
    """Where to ask for a licence of ``work``, for its public page: its own contact when a verified holder set
    one, else the contact each holder with a verified claim gave. Only what was given; never names or shares."""
    if work.licensing_email or work.licensing_url:
        return [{"email": work.licensing_email, "url": work.licensing_url}]
    holders = (
        Party.objects.filter(claims__work=work, claims__status=ClaimStatus.VERIFIED)
        .exclude(licensing_email="", licensing_url="")
        .order_by("pk")
        .distinct()
    )
    return [{"email": party.licensing_email, "url": party.licensing_url} for party in holders]


# --- Claim evidence, default shares, the review queue ---------------------------------------


@dataclass(frozen=True)
class ShareDefault:
    """The share a claim names when the claimant gives none, and why (shown before the claimant confirms)."""

    share_bp: int
    # True when the staff's default for the work's kind applies (others claim the work), False for the whole work.
    from_default: bool
    co_claimants: int


def claim_share_default(*, work: Work, holder: Party | None = None) -> ShareDefault:
    others = OwnershipClaim.objects.filter(work=work).exclude(status=ClaimStatus.REJECTED)
    if holder is not None:
        others = others.exclude(holder=holder)
    count = others.count()
    if count:
        default = ClaimDefaultShare.objects.filter(kind=work.kind).values_list("share_bp", flat=True).first()
        if default is not None:
            return ShareDefault(share_bp=default, from_default=True, co_claimants=count)
    return ShareDefault(share_bp=MAX_SHARE_BP, from_default=False, co_claimants=count)


def claim_evidence_list_for_actor(*, actor: Actor, claim_id: int) -> QuerySet[ClaimEvidence]:
    """A claim's evidence, for its claimant's party and staff; anyone else gets ``NotFound`` (the claim is not
    theirs to know of)."""
    claim = claim_get_for_actor(actor=actor, claim_id=claim_id)
    return ClaimEvidence.objects.filter(claim=claim).order_by("created_at", "pk")


def claim_evidence_get_for_actor(*, actor: Actor, claim_id: int, evidence_id: int) -> ClaimEvidence:
    evidence = claim_evidence_list_for_actor(actor=actor, claim_id=claim_id).filter(pk=evidence_id).first()
    if evidence is None:
        raise NotFound()
    return evidence


def claim_co_claims(*, claims: Sequence[OwnershipClaim]) -> dict[int, list[OwnershipClaim]]:
    """For each claim, the other live claims of the same work with their evidence (staff's side-by-side view), in
    two queries."""
    work_ids = {claim.work_id for claim in claims}
    by_work: dict[int, list[OwnershipClaim]] = {}
    for other in (
        OwnershipClaim.objects.filter(work_id__in=work_ids)
        .exclude(status=ClaimStatus.REJECTED)
        .select_related("holder")
        .prefetch_related("evidence")
        .order_by("created_at", "pk")
    ):
        by_work.setdefault(other.work_id, []).append(other)
    return {claim.pk: [c for c in by_work.get(claim.work_id, []) if c.pk != claim.pk] for claim in claims}
