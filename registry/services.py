"""Writes to the registry: parties, keys, works, claims and domains.

Every service validates, checks the current state, writes inside ``transaction.atomic()``,
records an audit event, and enqueues follow-up work on commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files import File
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from stdnum import isni as stdnum_isni
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.kr import brn as stdnum_brn

from core.actors import Actor, require_staff
from core.bulk import rows_as_instances, rows_insert
from core.dates import CLOCK_SKEW
from core.errors import InvalidInput, InvalidState, NotPermitted
from core.models import NotificationKind
from core.uploads import upload_size_check
from registry.audit import audit_record
from registry.domains import TxtResolver, domain_proof_check, origin_normalize
from registry.errors import DomainCheckFailed, IdentifierTaken, InvalidIdentifier, Overclaim
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize, url_host_canonical
from registry.mandates import mandate_require, no_mandate
from registry.models import (
    MAX_SHARE_BP,
    ApiKey,
    ApiScope,
    AuditEvent,
    ClaimDefaultShare,
    ClaimEvidence,
    ClaimStatus,
    ConflictResolution,
    ConflictStatus,
    ContentModality,
    ContributorRole,
    DomainMethod,
    DomainStatus,
    EvidenceKind,
    HolderType,
    Identifier,
    IdentifierConflict,
    MandateConflict,
    MandateConflictKind,
    MandatePower,
    MemberRole,
    Membership,
    MusicalWorkContributor,
    OwnershipClaim,
    Party,
    PartyKind,
    SimilarityThreshold,
    VerifiedDomain,
    Work,
    WorkKind,
    WorkStatus,
)
from registry.notifications import party_notify
from registry.selectors import claim_share_default
from registry.signals import audit_events_recorded, identifiers_registered, status_inputs_changed, work_owners_changed
from registry.similarity import MAX_THRESHOLD, identifier_content_fields

API_KEY_PREFIX = "orr"
# What a key's prefix may be: letters and digits, as long as the column (apikey_create makes 8 hex digits).
API_KEY_ID = re.compile(r"[0-9A-Za-z]{1,16}")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
# Django rebuilds a TextChoices' ``values`` list on every access: drafts of a large import check each row against
# these.
_WORK_KINDS = frozenset(WorkKind.values)
_CONTRIBUTOR_ROLES = frozenset(ContributorRole.values)


# --- Authorisation helpers ----------------------------------------------------------


def require_holder_actor(
    actor: Actor,
    holder: Party,
    *,
    scope: str = ApiScope.WORKS_WRITE,
    power: str | None = None,
    work: Work | None = None,
    kind: str | None = None,
    whole_catalogue: bool = False,
) -> None:
    """The actor must act for ``holder`` (or be staff), with the scope needed to write.

    A society or agent acting ``on_behalf_of`` the holder needs a mandate in force giving ``power`` over ``work``
    (or a new work of ``kind``, or the whole catalogue); without ``power`` the act is not one a mandate gives.
    """
    if actor.is_staff:
        return
    if actor.on_behalf_of is not None and actor.on_behalf_of.pk == holder.pk:
        if power is None:
            raise no_mandate()
        mandate_require(actor=actor, member=holder, power=power, work=work, kind=kind, whole_catalogue=whole_catalogue)
    elif actor.party is None or actor.party.pk != holder.pk or actor.on_behalf_of is not None:
        raise NotPermitted()
    if not actor.has_scope(scope):
        raise NotPermitted(_("This API key lacks the scope “%(scope)s”.") % {"scope": scope}, code="missing_scope")


def _require_party_admin(actor: Actor, party: Party) -> None:
    if actor.is_staff:
        return
    if actor.api_key is not None or actor.user_id is None or actor.party is None or actor.party.pk != party.pk:
        raise NotPermitted(_("Only an owner or administrator of the party, signed in, may do this."))
    if not Membership.objects.filter(
        party=party, user_id=actor.user_id, role__in=[MemberRole.OWNER, MemberRole.ADMIN]
    ).exists():
        raise NotPermitted(_("Only an owner or administrator of the party may do this."))


# --- Parties, members, keys ----------------------------------------------------------


def _clean_isni(value: str) -> str:
    if not value:
        return ""
    try:
        return str(stdnum_isni.validate(value))
    except StdnumValidationError as exc:
        raise InvalidInput(_("Not a valid ISNI: %(reason)s") % {"reason": str(exc)}, field="isni") from None


def _brn_check_digit_ok(number: str) -> bool:
    # python-stdnum checks only the BRN's length and components; the National Tax Service
    # check digit (weights 1,3,7,1,3,7,1,3,5 plus the carry of the ninth digit) is ours.
    digits = [int(c) for c in number]
    total = sum(d * w for d, w in zip(digits[:9], (1, 3, 7, 1, 3, 7, 1, 3, 5), strict=True))
    total += digits[8] * 5 // 10
    return (10 - total % 10) % 10 == digits[9]


def _clean_brn(value: str) -> str:
    if not value:
        return ""
    try:
        number = str(stdnum_brn.validate(value))
    except StdnumValidationError as exc:
        raise InvalidInput(
            _("Not a valid business registration number: %(reason)s") % {"reason": str(exc)},
            field="business_registration_number",
        ) from None
    if not _brn_check_digit_ok(number):
        raise InvalidInput(
            _("Not a valid business registration number: the check digit does not match."),
            code="invalid_checksum",
            field="business_registration_number",
        )
    return number


def party_create(
    *,
    actor: Actor,
    kind: str,
    name: str,
    owner: User | None = None,
    holder_type: str = HolderType.ORGANISATION,
    isni: str = "",
    business_registration_number: str = "",
) -> Party:
    """Create a rights holder or AI lab; ``owner`` becomes its first member with the owner role."""
    if kind not in PartyKind.values:
        raise InvalidInput(_("Unknown party kind."), field="kind")
    if holder_type not in HolderType.values:
        raise InvalidInput(_("Unknown holder type."), field="holder_type")
    name = name.strip()
    if not name:
        raise InvalidInput(_("A name is required."), field="name")
    clean_isni = _clean_isni(isni)
    clean_brn = _clean_brn(business_registration_number)
    if Party.objects.filter(name__iexact=name).exists():
        raise InvalidState(_("A party with this name already exists."), code="party_exists", field="name")
    with transaction.atomic():
        party = Party.objects.create(
            kind=kind, name=name, holder_type=holder_type, isni=clean_isni, business_registration_number=clean_brn
        )
        audit_record(code="registry.party.created", actor=actor, target=party, data={"kind": kind, "name": name})
        if owner is not None:
            membership_add(actor=actor, party=party, user=owner, role=MemberRole.OWNER, _skip_check=True)
    return party


def membership_add(*, actor: Actor, party: Party, user: User, role: str, _skip_check: bool = False) -> Membership:
    if role not in MemberRole.values:
        raise InvalidInput(_("Unknown role."), field="role")
    if not _skip_check:
        _require_party_admin(actor, party)
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(party=party, user=user, defaults={"role": role})
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        audit_record(
            code="registry.membership.added", actor=actor, target=membership, data={"user": user.pk, "role": role}
        )
    return membership


def _hash_key(raw_key: str) -> str:
    # Keys are 256-bit random secrets, so a fast unsalted hash is safe and allows indexed lookup.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def apikey_create(
    *,
    actor: Actor,
    scopes: Sequence[str],
    party: Party | None = None,
    staff_user: User | None = None,
    name: str = "",
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored and shown only now."""
    unknown = sorted(set(scopes) - set(ApiScope.values))
    if unknown or not scopes:
        raise InvalidInput(
            _("Unknown or missing scopes: %(scopes)s") % {"scopes": ", ".join(unknown) or "-"},
            code="invalid_scopes",
            field="scopes",
        )
    if (party is None) == (staff_user is None):
        raise InvalidInput(_("A key belongs either to a party or to a staff user."), field="party")
    if party is not None:
        _require_party_admin(actor, party)
        if ApiScope.STAFF in scopes:
            raise InvalidInput(_("Party keys cannot have the staff scope."), field="scopes")
    if staff_user is not None:
        require_staff(actor)
        if not getattr(staff_user, "is_staff", False):
            raise InvalidInput(_("Staff keys are only for staff users."), field="staff_user")
    prefix = secrets.token_hex(4)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            party=party,
            user=staff_user if staff_user is not None else actor.person,
            name=name.strip()[:100],
            prefix=prefix,
            key_hash=_hash_key(raw_key),
            scopes=sorted(set(scopes)),
        )
        audit_record(
            code="registry.apikey.created", actor=actor, target=key, data={"prefix": prefix, "scopes": key.scopes}
        )
    return key, raw_key


# Keys this process verified, by the SHA-256 of the presented secret, with when that was read from the database.
# A lab sends thousands of lookups a second with one key, and reading the key, its party and its user was a third
# of a single lookup's time. A revocation therefore reaches the other processes within API_KEY_CACHE_SECONDS;
# the process that revokes forgets at once. Bounded: emptied when full.
_verified_keys: dict[str, tuple[float, ApiKey]] = {}
_VERIFIED_KEYS_MAX = 10_000


def apikey_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key for a presented secret, or None. Updates ``last_used_at`` at most once a minute."""
    parts = raw_key.split("_")
    # A prefix of other characters names no key and is not looked up: PostgreSQL would refuse a NUL (a 500).
    if len(parts) < 3 or parts[0] != API_KEY_PREFIX or not API_KEY_ID.fullmatch(parts[1]):
        return None
    presented = _hash_key(raw_key)
    clock = time.monotonic()
    remembered = _verified_keys.get(presented)
    if remembered is not None and clock - remembered[0] < settings.API_KEY_CACHE_SECONDS:
        key = remembered[1]
    else:
        found = ApiKey.objects.select_related("party", "user").filter(prefix=parts[1], revoked_at__isnull=True).first()
        if found is None or not secrets.compare_digest(found.key_hash, presented):
            _verified_keys.pop(presented, None)
            return None
        if len(_verified_keys) >= _VERIFIED_KEYS_MAX:
            _verified_keys.clear()
        key = found
        _verified_keys[presented] = (clock, key)
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def apikey_forget_verified() -> None:
    """Forget the keys this process verified: the next request with each reads it from the database again."""
    _verified_keys.clear()


def apikey_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    if api_key.party is not None:
        _require_party_admin(actor, api_key.party)
    else:
        require_staff(actor)
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        apikey_forget_verified()
        if not changed:
            raise InvalidState(_("This key is already revoked."), code="already_revoked")
        api_key.refresh_from_db()
        audit_record(code="registry.apikey.revoked", actor=actor, target=api_key, data={"prefix": api_key.prefix})
    return api_key


# --- Works ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkDraft:
    """A validated work ready to register; building one is where input errors surface."""

    title: str
    kind: str
    identifiers: tuple[IdentifierKey, ...]
    creators: tuple[str, ...] = ()
    language: str = ""
    creation_year: int | None = None
    share_bp: int = MAX_SHARE_BP
    valid_from: date | None = None
    # A recording's musical work (its id), and a musical work's writers and publishers.
    musical_work_id: int | None = None
    contributors: tuple[ContributorDraft, ...] = ()


@dataclass(frozen=True)
class ContributorDraft:
    role: str
    name: str
    share_bp: int = 0
    ipi: str = ""
    designation: str = ""


def ipi_normalize(value: str) -> str:
    """An IPI name number as 11 digits (CWR pads it with leading zeros); empty when not given."""
    digits = (value or "").strip().replace(" ", "")
    if not digits:
        return ""
    if not digits.isdigit() or not 1 <= len(digits) <= 11:
        raise InvalidInput(_("An IPI name number has up to 11 digits."), code="invalid_format", field="ipi")
    return digits.zfill(11)


def contributors_build(items: Iterable[Mapping[str, Any]]) -> tuple[ContributorDraft, ...]:
    """Writers and publishers of a musical work, validated; their shares sum to at most 100%."""
    drafts: list[ContributorDraft] = []
    for index, item in enumerate(items):
        role = str(item.get("role", "")).strip().lower()
        if role not in _CONTRIBUTOR_ROLES:
            raise InvalidInput(_("A contributor is a writer or a publisher."), field=f"contributors[{index}].role")
        name = str(item.get("name", "")).strip()
        if not name or len(name) > 200:
            raise InvalidInput(_("A contributor needs a name."), code="required", field=f"contributors[{index}].name")
        try:
            ipi = ipi_normalize(str(item.get("ipi", "") or ""))
        except InvalidInput as exc:
            exc.field = f"contributors[{index}].ipi"
            raise
        share = int(item.get("share_bp", 0) or 0)
        if not 0 <= share <= MAX_SHARE_BP:
            raise InvalidInput(
                _("The share is in basis points, from 0 to 10000 (100%)."),
                code="out_of_range",
                field=f"contributors[{index}].share_bp",
            )
        designation = str(item.get("designation", "") or "").strip().upper()[:2]
        drafts.append(ContributorDraft(role=role, name=name, share_bp=share, ipi=ipi, designation=designation))
    if sum(d.share_bp for d in drafts) > MAX_SHARE_BP:
        raise InvalidInput(
            _("The writers' and publishers' shares sum to more than 100%."),
            code="shares_over_100",
            field="contributors",
        )
    return tuple(drafts)


def work_draft_build(
    *,
    title: str,
    kind: str,
    identifiers: Iterable[Mapping[str, Any]],
    creators: Iterable[str] = (),
    language: str = "",
    creation_year: int | None = None,
    share_bp: int | None = None,
    valid_from: date | None = None,
    file_pending: bool = False,
    musical_work: Work | None = None,
    contributors: Iterable[Mapping[str, Any]] = (),
) -> WorkDraft:
    """Validate and normalize one work's input; raise the first error with the offending field.

    ``file_pending``: the work's file is being fingerprinted, and its SHA-256 and ISCC-CODE will find it, so it
    may be registered without identifiers of its own.
    """
    title = (title or "").strip()
    if not title:
        raise InvalidInput(_("A title is required."), code="required", field="title")
    if len(title) > 500:
        raise InvalidInput(_("The title is longer than 500 characters."), code="too_long", field="title")
    kind = (kind or "").strip().lower()
    if kind not in _WORK_KINDS:
        raise InvalidInput(
            _("Unknown kind; use one of: %(kinds)s.") % {"kinds": ", ".join(WorkKind.values)},
            code="invalid_choice",
            field="kind",
        )
    keys: list[IdentifierKey] = []
    for index, item in enumerate(identifiers):
        try:
            key = identifier_normalize(scheme=str(item.get("scheme", "")), value=str(item.get("value", "")))
        except InvalidIdentifier as exc:
            exc.field = f"identifiers[{index}].{exc.field or 'value'}"
            raise
        if key not in keys:  # equivalent spellings of one identifier collapse into one
            keys.append(key)
    if not keys and not file_pending:
        raise InvalidInput(
            _("At least one identifier is required, so the work can be found."), code="required", field="identifiers"
        )
    clean_creators = tuple(c.strip() for c in creators if c and c.strip())
    language = (language or "").strip()
    if language and (len(language) > 35 or not _LANGUAGE_TAG.match(language)):
        raise InvalidInput(_("Use a language tag such as ko or en-US."), code="invalid_format", field="language")
    if creation_year is not None:
        this_year = timezone.localdate().year
        if not 1 <= int(creation_year) <= this_year:
            raise InvalidInput(
                _("The creation year must be between 1 and %(year)s.") % {"year": this_year},
                code="out_of_range",
                field="creation_year",
            )
    share = MAX_SHARE_BP if share_bp is None else int(share_bp)
    if not 1 <= share <= MAX_SHARE_BP:
        raise InvalidInput(
            _("The share is in basis points, from 1 to 10000 (100%)."), code="out_of_range", field="share_bp"
        )
    if musical_work is not None:
        if kind != WorkKind.AUDIO:
            raise InvalidInput(
                _("Only a recording (kind audio) names a musical work."), code="not_a_recording", field="musical_work"
            )
        if musical_work.kind != WorkKind.MUSICAL_WORK:
            raise InvalidInput(
                _("Work %(work)s is not a musical work.") % {"work": musical_work.pk},
                code="not_a_musical_work",
                field="musical_work",
            )
    clean_contributors = contributors_build(contributors)
    if clean_contributors and kind not in (WorkKind.MUSICAL_WORK, WorkKind.TEXT):
        raise InvalidInput(
            _("Only a musical work or a text has writers and publishers."), code="unexpected", field="contributors"
        )
    return WorkDraft(
        title=title,
        kind=kind,
        identifiers=tuple(keys),
        creators=clean_creators,
        language=language,
        creation_year=int(creation_year) if creation_year is not None else None,
        share_bp=share,
        valid_from=valid_from,
        musical_work_id=musical_work.pk if musical_work is not None else None,
        contributors=clean_contributors,
    )


@dataclass
class WorkRegistration:
    """The outcome of registering one draft: the work and its claim, or the error that refused it."""

    draft: WorkDraft
    work: Work | None = None
    claim: OwnershipClaim | None = None
    error: IdentifierTaken | NotPermitted | None = None


def _existing_identifier_works(keys: Iterable[IdentifierKey]) -> dict[IdentifierKey, int]:
    by_scheme: dict[str, set[str]] = {}
    for key in keys:
        by_scheme.setdefault(key.scheme, set()).add(key.value)
    if not by_scheme:
        return {}
    condition = Q()
    for scheme, values in by_scheme.items():
        # One array literal per scheme: a chunk of an import asks for thousands of identifiers at once.
        condition |= Q(scheme=scheme, value__any_of=values)
    return {
        IdentifierKey(scheme=scheme, value=value): work_id
        for scheme, value, work_id in Identifier.objects.filter(condition).values_list("scheme", "value", "work_id")
    }


def _identifier_taken(key: IdentifierKey, work_id: int) -> IdentifierTaken:
    return IdentifierTaken(
        _("The identifier %(key)s already belongs to work %(work)s; claim that work instead.")
        % {"key": str(key), "work": work_id},
        field="identifiers",
        extra={"existing_work_id": work_id, "identifier": str(key)},
    )


def works_register(*, actor: Actor, holder: Party, drafts: Sequence[WorkDraft]) -> list[WorkRegistration]:
    """Register many works for ``holder`` set-based: a constant number of queries per call.

    Each draft whose identifiers are all free becomes a work with a pending claim of the
    holder; a draft with an identifier held by another work (or by an earlier draft in the
    same call) is refused with the existing work's id, and the others still register.
    """
    if actor.on_behalf_of is None or actor.is_staff:
        require_holder_actor(actor, holder)
    if holder.kind != PartyKind.HOLDER:
        raise InvalidInput(_("Only rights holders register works."), code="not_a_holder")
    # A concurrent registration of the same identifier makes the insert fail; one retry with
    # a fresh view of the taken identifiers turns that into a per-draft refusal.
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _works_register_once(actor=actor, holder=holder, drafts=drafts)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _works_register_once(*, actor: Actor, holder: Party, drafts: Sequence[WorkDraft]) -> list[WorkRegistration]:
    existing = _existing_identifier_works(key for draft in drafts for key in draft.identifiers)
    results = [WorkRegistration(draft=draft) for draft in drafts]
    claimed_in_batch: dict[IdentifierKey, int] = {}
    accepted: list[WorkRegistration] = []
    # An agent's mandate may cover only some kinds: each draft is checked, so a file of mixed kinds registers
    # what the mandate covers and answers the rest with ``no_mandate``.
    kinds_allowed = _agent_kinds_allowed(actor=actor, holder=holder, kinds={d.kind for d in drafts})
    for index, result in enumerate(results):
        if result.draft.kind not in kinds_allowed:
            result.error = no_mandate(
                _("No mandate in force lets you register works of the kind %(kind)s for this member.")
                % {"kind": result.draft.kind}
            )
            result.error.field = "kind"
            continue
        taken = next((key for key in result.draft.identifiers if key in existing), None)
        if taken is not None:
            result.error = _identifier_taken(taken, existing[taken])
            continue
        earlier = next((key for key in result.draft.identifiers if key in claimed_in_batch), None)
        if earlier is not None:
            result.error = IdentifierTaken(
                _("The identifier %(key)s is also in row %(row)s of this batch.")
                % {"key": str(earlier), "row": claimed_in_batch[earlier] + 1},
                code="identifier_duplicate",
                field="identifiers",
                extra={"identifier": str(earlier)},
            )
            continue
        for key in result.draft.identifiers:
            claimed_in_batch[key] = index
        accepted.append(result)
    if not accepted:
        return results

    now = timezone.now()
    today = timezone.localdate()
    # The rows go in by COPY on PostgreSQL (core.bulk): building a model instance per row is the cost of a large
    # import. The instances handed back are made from the rows written.
    works = rows_as_instances(
        Work,
        rows_insert(
            Work,
            (
                {
                    "kind": r.draft.kind,
                    "title": r.draft.title,
                    "creators": list(r.draft.creators),
                    "language": r.draft.language,
                    "creation_year": r.draft.creation_year,
                    "status": WorkStatus.UNVERIFIED.value,
                    "registered_by_id": holder.pk,
                    "created_at": now,
                    "musical_work_id": r.draft.musical_work_id,
                }
                for r in accepted
            ),
        ),
    )
    rows_insert(
        MusicalWorkContributor,
        (
            {
                "work_id": work.pk,
                "role": c.role,
                "designation": c.designation,
                "name": c.name,
                "ipi": c.ipi,
                "share_bp": c.share_bp,
                "position": position,
            }
            for work, r in zip(works, accepted, strict=True)
            for position, c in enumerate(r.draft.contributors)
        ),
    )
    rows_insert(
        Identifier,
        (
            {
                "work_id": work.pk,
                "scheme": key.scheme,
                "value": key.value,
                "spelling": key.spelling,
                "created_at": now,
                **identifier_content_fields(scheme=key.scheme, value=key.value),
            }
            for work, r in zip(works, accepted, strict=True)
            for key in r.draft.identifiers
        ),
    )
    _identifiers_registered_on_commit([str(key) for r in accepted for key in r.draft.identifiers])
    agent_id = actor.party.pk if actor.on_behalf_of is not None and actor.party is not None else None
    claims = rows_as_instances(
        OwnershipClaim,
        rows_insert(
            OwnershipClaim,
            (
                {
                    "work_id": work.pk,
                    "holder_id": holder.pk,
                    "share_bp": r.draft.share_bp,
                    "valid_from": r.draft.valid_from or today,
                    "status": ClaimStatus.PENDING.value,
                    "created_at": now,
                    "filed_by_agent_id": agent_id,
                }
                for work, r in zip(works, accepted, strict=True)
            ),
        ),
    )
    events = rows_as_instances(
        AuditEvent,
        rows_insert(
            AuditEvent,
            (
                {
                    "code": "registry.work.registered",
                    "created_at": now,
                    "actor_user_id": actor.user_id,
                    "actor_party_id": actor.party.pk if actor.party is not None else None,
                    "actor_api_key_id": actor.api_key.pk if actor.api_key is not None else None,
                    "on_behalf_of_id": actor.on_behalf_of.pk if actor.on_behalf_of is not None else None,
                    "object_type": "registry.work",
                    "object_id": str(work.pk),
                    "data": {
                        "holder": holder.pk,
                        "identifiers": [str(k) for k in r.draft.identifiers],
                        "claim": claim.pk,
                        "share_bp": claim.share_bp,
                    },
                }
                for work, claim, r in zip(works, claims, accepted, strict=True)
            ),
        ),
    )
    audit_events_recorded.send(sender=AuditEvent, events=events)
    status_inputs_changed.send(
        sender=Work,
        work_ids=[work.pk for work in works],
        cause=None,
        cause_by_work={work.pk: event for work, event in zip(works, events, strict=True)},
    )
    for work, claim, r in zip(works, claims, accepted, strict=True):
        r.work, r.claim = work, claim
    return results


def _agent_kinds_allowed(*, actor: Actor, holder: Party, kinds: set[str]) -> set[str]:
    """The kinds among ``kinds`` the actor may register for ``holder``: all for the holder itself."""
    if actor.on_behalf_of is None or actor.is_staff:
        return kinds
    allowed = set()
    for kind in sorted(kinds):
        try:
            require_holder_actor(actor, holder, power=MandatePower.REGISTER_WORKS, kind=kind)
        except NotPermitted as exc:
            if exc.code != "no_mandate":
                raise
            continue
        allowed.add(kind)
    if not allowed and kinds:
        raise no_mandate()
    return allowed


def work_register(*, actor: Actor, holder: Party, draft: WorkDraft) -> tuple[Work, OwnershipClaim]:
    """Register one work with the holder's pending ownership claim."""
    (result,) = works_register(actor=actor, holder=holder, drafts=[draft])
    if result.error is not None:
        raise result.error
    assert result.work is not None
    assert result.claim is not None
    return result.work, result.claim


# --- Ownership claims ----------------------------------------------------------------


def _work_lock(work_id: int) -> Work:
    # Every change to a work's claims takes this lock first, so share sums are read and
    # written one transaction at a time (the database trigger is the last line of defence).
    return Work.objects.select_for_update().get(pk=work_id)


def _work_status_refresh(*, actor: Actor, work: Work) -> Work:
    """Recompute a locked work's status from its claims and its open identifier conflicts, and record a change
    of dispute.

    Only verified claims and claims staff accepted for review count: a claim nobody has reviewed yet
    changes nothing, or anyone could freeze the payments of someone else's verified work by filing one. A work
    on either side of an open identifier conflict stays disputed until staff resolve it.
    """
    totals = OwnershipClaim.objects.filter(work=work, status__in=[ClaimStatus.VERIFIED, ClaimStatus.IN_REVIEW])
    verified = totals.filter(status=ClaimStatus.VERIFIED).aggregate(s=Sum("share_bp"))["s"] or 0
    live = totals.aggregate(s=Sum("share_bp"))["s"] or 0
    conflicted = (
        IdentifierConflict.objects.filter(Q(work=work) | Q(kept_by=work), status=ConflictStatus.OPEN).exists()
        or MandateConflict.objects.filter(work=work, status=ConflictStatus.OPEN).exists()
    )
    if live > MAX_SHARE_BP or conflicted:
        status = WorkStatus.DISPUTED
    elif verified > 0:
        status = WorkStatus.VERIFIED
    else:
        status = WorkStatus.UNVERIFIED
    if status != work.status:
        previous = work.status
        Work.objects.filter(pk=work.pk).update(status=status)
        work.status = status
        if status == WorkStatus.DISPUTED:
            audit_record(
                code="registry.work.disputed",
                actor=actor,
                target=work,
                data={"claimed_bp": live, "verified_bp": verified, "identifier_conflict": conflicted},
            )
            _claimants_notify_disputed(work=work)
        elif previous == WorkStatus.DISPUTED:
            audit_record(code="registry.work.dispute_resolved", actor=actor, target=work, data={"status": status})
    return work


def _share_label(share_bp: int) -> str:
    return f"{share_bp / 100:g}%"


def _claimants_notify_disputed(*, work: Work) -> None:
    # Keyed by which dispute of the work this is (the count of its "disputed" audit events, this one included):
    # a dispute resolved and opened again is told again, one told twice is recorded once.
    disputes = AuditEvent.objects.filter(
        code="registry.work.disputed", object_type="registry.work", object_id=str(work.pk)
    )
    number = disputes.count()
    for holder_id in (
        OwnershipClaim.objects.filter(work=work, status__in=[ClaimStatus.VERIFIED, ClaimStatus.IN_REVIEW])
        .values_list("holder_id", flat=True)
        .distinct()
    ):
        party_notify(
            party_id=holder_id,
            kind=NotificationKind.CLAIM_DISPUTED,
            key=f"work:{work.pk}:disputed:{number}",
            context={"work_id": work.pk, "work_title": work.title},
        )


def claim_file(
    *, actor: Actor, holder: Party, work: Work, share_bp: int | None = None, valid_from: date | None = None
) -> OwnershipClaim:
    """File a holder's claim to a share of an existing work.

    The claim is pending and changes nothing (the work's status, who is paid) until staff verify it, or
    accept it for review (``claim_accept_for_review``), which disputes the work if the shares pass 100%.
    Without ``share_bp`` the claim is to the share ``claim_share_default`` names (the staff's default for the
    work's kind when others already claim it, else the whole work), the share the claimant was shown.
    """
    require_holder_actor(actor, holder, power=MandatePower.CLAIM, work=work)
    if holder.kind != PartyKind.HOLDER:
        raise InvalidInput(_("Only rights holders claim works."), code="not_a_holder")
    if share_bp is None:
        share_bp = claim_share_default(work=work, holder=holder).share_bp
    if not 1 <= share_bp <= MAX_SHARE_BP:
        raise InvalidInput(
            _("The share is in basis points, from 1 to 10000 (100%)."), code="out_of_range", field="share_bp"
        )
    agent = actor.party if actor.on_behalf_of is not None else None
    live = OwnershipClaim.objects.filter(work=work, holder=holder).exclude(status=ClaimStatus.REJECTED).first()
    if live is not None and agent is not None and live.filed_by_agent_id not in (None, agent.pk):
        # Two agents claiming one member's work: a dispute for staff (the work's uses are held), not a second
        # claim. The conflict is committed on its own: the claim itself is refused.
        conflict = mandate_conflict_open(
            actor=actor,
            kind=MandateConflictKind.TWO_AGENTS,
            member=holder,
            work=work,
            parties=[live.filed_by_agent_id, agent.pk],
            data={"claim": live.pk, "share_bp": share_bp},
        )
        raise InvalidState(
            _("Another agent already claimed this work for the member; staff will resolve the dispute."),
            code="mandate_conflict",
            extra={"conflict_id": conflict.pk, "work_id": work.pk},
        )
    with transaction.atomic():
        work = _work_lock(work.pk)
        if OwnershipClaim.objects.filter(work=work, holder=holder).exclude(status=ClaimStatus.REJECTED).exists():
            raise InvalidState(_("You already have a claim on this work."), code="claim_exists")
        claim = OwnershipClaim.objects.create(
            work=work,
            holder=holder,
            share_bp=share_bp,
            valid_from=valid_from or timezone.localdate(),
            filed_by_agent=agent,
        )
        event = audit_record(
            code="registry.claim.filed",
            actor=actor,
            target=claim,
            data={"work": work.pk, "holder": holder.pk, "share_bp": share_bp},
        )
        _work_status_refresh(actor=actor, work=work)
        status_inputs_changed.send(sender=OwnershipClaim, work_ids=[work.pk], cause=event)
    return claim


def claim_verify(
    *, actor: Actor, claim: OwnershipClaim, reason: str = "", via_domain_id: int | None = None
) -> OwnershipClaim:
    """Verify a pending claim or one under review. Refused with ``Overclaim`` when verified shares would pass 100%."""
    if via_domain_id is None:
        require_staff(actor)
    with transaction.atomic():
        work = _work_lock(claim.work_id)
        claim = OwnershipClaim.objects.select_for_update().get(pk=claim.pk)
        if claim.status not in (ClaimStatus.PENDING, ClaimStatus.IN_REVIEW):
            raise InvalidState(
                _("Only pending claims and claims under review can be verified; this one is %(status)s.")
                % {"status": claim.get_status_display()}
            )
        verified = (
            OwnershipClaim.objects.filter(work=work, status=ClaimStatus.VERIFIED).aggregate(s=Sum("share_bp"))["s"] or 0
        )
        if verified + claim.share_bp > MAX_SHARE_BP:
            raise Overclaim(
                _("Verifying this claim would bring verified shares of the work to %(total)s%%.")
                % {"total": (verified + claim.share_bp) / 100},
                extra={"work_id": work.pk, "verified_bp": verified},
            )
        claim.status = ClaimStatus.VERIFIED
        claim.decided_by_id = actor.user_id
        claim.decided_at = timezone.now()
        claim.decision_reason = reason
        claim.verified_by_domain_id = via_domain_id
        try:
            with transaction.atomic():
                claim.save(
                    update_fields=["status", "decided_by", "decided_at", "decision_reason", "verified_by_domain"]
                )
        except IntegrityError:
            # The share-cap trigger caught what the check above could not see (a concurrent writer).
            raise Overclaim(extra={"work_id": work.pk}) from None
        event = audit_record(
            code="registry.claim.verified",
            actor=actor,
            target=claim,
            data={
                "work": work.pk,
                "holder": claim.holder_id,
                "share_bp": claim.share_bp,
                "reason": reason,
                "domain": via_domain_id,
            },
        )
        _work_status_refresh(actor=actor, work=work)
        status_inputs_changed.send(sender=OwnershipClaim, work_ids=[work.pk], cause=event)
        _owners_changed_on_commit(work.pk)
        party_notify(
            party_id=claim.holder_id,
            kind=NotificationKind.CLAIM_VERIFIED,
            key=f"claim:{claim.pk}:verified",
            context={"work_id": work.pk, "work_title": work.title, "share": _share_label(claim.share_bp)},
        )
    return claim


def _owners_changed_on_commit(work_id: int) -> None:
    transaction.on_commit(lambda: work_owners_changed.send(sender=Work, work_id=work_id))


def _identifiers_registered_on_commit(keys: list[str]) -> None:
    if keys:
        transaction.on_commit(lambda: identifiers_registered.send(sender=Identifier, keys=keys))


def claim_accept_for_review(*, actor: Actor, claim: OwnershipClaim, reason: str = "") -> OwnershipClaim:
    """Staff accept a pending claim for review: from now on it counts against the verified shares.

    If the claim and the verified shares pass 100%, the work is disputed and its next uses are held in
    escrow instead of paid to its owners, until staff verify or reject (either resolves the dispute). A
    claim that fits in the share nobody verified disputes nothing: that share is held in escrow anyway.
    """
    require_staff(actor)
    with transaction.atomic():
        work = _work_lock(claim.work_id)
        changed = OwnershipClaim.objects.filter(pk=claim.pk, status=ClaimStatus.PENDING).update(
            status=ClaimStatus.IN_REVIEW
        )
        claim.refresh_from_db()
        if not changed:
            raise InvalidState(
                _("Only pending claims can be accepted for review; this one is %(status)s.")
                % {"status": claim.get_status_display()}
            )
        event = audit_record(
            code="registry.claim.accepted_for_review",
            actor=actor,
            target=claim,
            data={"work": work.pk, "holder": claim.holder_id, "share_bp": claim.share_bp, "reason": reason},
        )
        _work_status_refresh(actor=actor, work=work)
        status_inputs_changed.send(sender=OwnershipClaim, work_ids=[work.pk], cause=event)
    return claim


def claim_reject(*, actor: Actor, claim: OwnershipClaim, reason: str) -> OwnershipClaim:
    """Reject a pending claim or one under review, or withdraw a verified one (resolving a dispute); a reason
    is required.
    """
    require_staff(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the claim is rejected."), code="required", field="reason")
    with transaction.atomic():
        work = _work_lock(claim.work_id)
        changed = OwnershipClaim.objects.filter(
            pk=claim.pk, status__in=[ClaimStatus.PENDING, ClaimStatus.IN_REVIEW, ClaimStatus.VERIFIED]
        ).update(
            status=ClaimStatus.REJECTED, decided_by_id=actor.user_id, decided_at=timezone.now(), decision_reason=reason
        )
        if not changed:
            raise InvalidState(_("This claim is already rejected."))
        claim.refresh_from_db()
        event = audit_record(
            code="registry.claim.rejected",
            actor=actor,
            target=claim,
            data={"work": work.pk, "holder": claim.holder_id, "reason": reason},
        )
        _work_status_refresh(actor=actor, work=work)
        status_inputs_changed.send(sender=OwnershipClaim, work_ids=[work.pk], cause=event)
        _owners_changed_on_commit(work.pk)
        party_notify(
            party_id=claim.holder_id,
            kind=NotificationKind.CLAIM_REJECTED,
            key=f"claim:{claim.pk}:rejected",
            context={"work_id": work.pk, "work_title": work.title, "reason": reason},
        )
    return claim


def staff_user_ensure(*, email: str) -> User:
    """The staff user with this e-mail, created (without a usable password) if needed."""
    user_model = get_user_model()
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(gettext("Not an e-mail address."), field="email")
    user = user_model.objects.filter(email__iexact=email).first()
    if user is None:
        user = user_model.objects.create_user(username=email, email=email, is_staff=True)
        user.set_unusable_password()
        user.save()
    elif not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def staff_totp_device_add(*, actor: Actor, user: User, name: str) -> Any:
    """A confirmed TOTP device (django-otp) for a staff user: the admin's second factor (STAFF_OTP_REQUIRED).

    The caller shows its ``config_url`` (an otpauth:// URI for an authenticator app) once, to that person.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not user.is_staff:
        raise InvalidInput(gettext("Only staff use a second factor for the admin."), field="user")
    with transaction.atomic():
        device = TOTPDevice.objects.create(user=user, name=name or "authenticator", confirmed=True)
        audit_record(code="registry.staff.totp_added", actor=actor, target=user, data={"device": device.name})
    return device


# --- Verified domains ----------------------------------------------------------------


def domain_add(*, actor: Actor, holder: Party, origin: str, method: str) -> VerifiedDomain:
    """Start proving control of an origin; the answer carries the token to publish."""
    require_holder_actor(actor, holder)
    if holder.kind != PartyKind.HOLDER:
        raise InvalidInput(_("Only rights holders verify domains."), code="not_a_holder")
    if method not in DomainMethod.values:
        raise InvalidInput(_("Use the method dns or file."), code="invalid_choice", field="method")
    try:
        clean_origin, host = origin_normalize(origin)
    except InvalidIdentifier as exc:
        raise InvalidInput(exc.message, code=exc.code, field="origin") from None
    with transaction.atomic():
        domain = VerifiedDomain.objects.filter(holder=holder, origin=clean_origin).first()
        if domain is not None:
            if domain.method != method and domain.status != DomainStatus.VERIFIED:
                domain.method = method
                domain.save(update_fields=["method"])
            return domain
        domain = VerifiedDomain.objects.create(
            holder=holder, origin=clean_origin, host=host, method=method, token=secrets.token_urlsafe(24)
        )
        audit_record(
            code="registry.domain.added",
            actor=actor,
            target=domain,
            data={"origin": clean_origin, "method": method},
        )
    return domain


def domain_check(*, actor: Actor, domain: VerifiedDomain, resolver: TxtResolver | None = None) -> VerifiedDomain:
    """Check the proof now. A failed check is recorded on the domain (``last_error``), not raised."""
    require_holder_actor(actor, domain.holder)
    if domain.status == DomainStatus.VERIFIED:
        return domain
    try:
        domain_proof_check(
            method=domain.method, origin=domain.origin, host=domain.host, token=domain.token, resolver=resolver
        )
    except DomainCheckFailed as exc:
        expired = timezone.now() - domain.created_at > timedelta(days=settings.DOMAIN_VERIFICATION_TTL_DAYS)
        VerifiedDomain.objects.filter(pk=domain.pk).exclude(status=DomainStatus.VERIFIED).update(
            last_checked_at=timezone.now(),
            last_error=f"{exc.code}: {exc.message}",
            status=DomainStatus.FAILED if expired else DomainStatus.PENDING,
        )
        domain.refresh_from_db()
        return domain
    return domain_verify(actor=actor, domain=domain, method_used=domain.method)


def domain_verify(
    *, actor: Actor, domain: VerifiedDomain, method_used: str = "staff", reason: str = ""
) -> VerifiedDomain:
    """Mark a domain verified and verify the holder's pending claims on works under it."""
    if method_used == "staff":
        require_staff(actor)
    with transaction.atomic():
        domain = VerifiedDomain.objects.select_for_update().get(pk=domain.pk)
        if domain.status == DomainStatus.VERIFIED:
            return domain
        if VerifiedDomain.objects.filter(origin=domain.origin, status=DomainStatus.VERIFIED).exists():
            raise InvalidState(
                _("Another rights holder has already verified this origin; contact the registry."),
                code="domain_taken",
            )
        domain.status = DomainStatus.VERIFIED
        domain.verified_at = domain.last_checked_at = timezone.now()
        domain.last_error = ""
        domain.save(update_fields=["status", "verified_at", "last_checked_at", "last_error"])
        event = audit_record(
            code="registry.domain.verified",
            actor=actor,
            target=domain,
            data={"origin": domain.origin, "method": method_used, "reason": reason},
        )
        status_inputs_changed.send(sender=VerifiedDomain, domain_id=domain.pk, cause=event)
        transaction.on_commit(lambda: _enqueue_domain_claims(domain.pk))
    return domain


def _enqueue_domain_claims(domain_id: int) -> None:
    from registry.tasks import domain_claims_verify

    domain_claims_verify.delay(domain_id)


def domain_claims_verify(*, domain_id: int) -> int:
    """Verify the holder's pending claims on works with a ``url`` under a verified domain.

    Returns how many claims were verified; overclaims stay pending for staff to decide.
    Safe to run again: verified claims are no longer pending.
    """
    domain = VerifiedDomain.objects.filter(pk=domain_id, status=DomainStatus.VERIFIED).first()
    if domain is None:
        return 0
    # URL keys are canonical (https, no leading "www."): the domain's own host, its www-less form, or a
    # subdomain of its host (registry.identifiers.domain_covers_host).
    hosts = f"([^/@]*\\.)?{re.escape(domain.host)}|{re.escape(url_host_canonical(domain.host))}"
    under_host = rf"^https?://({hosts})(:[0-9]+)?/"
    work_ids = Identifier.objects.filter(scheme=Scheme.URL, value__regex=under_host).values("work_id")
    verified = 0
    actor = Actor(party=domain.holder, is_system=True)
    for claim in OwnershipClaim.objects.filter(
        holder_id=domain.holder_id, status=ClaimStatus.PENDING, work_id__in=work_ids
    ).order_by("pk"):
        try:
            claim_verify(actor=actor, claim=claim, reason=f"domain {domain.origin}", via_domain_id=domain.pk)
        except (Overclaim, InvalidState):
            continue
        verified += 1
    return verified


def domains_recheck_pending() -> int:
    """Re-check every pending domain once; the proof may have been published since the last try."""
    checked = 0
    for domain in VerifiedDomain.objects.filter(status=DomainStatus.PENDING).order_by("last_checked_at", "pk"):
        domain_check(actor=Actor.system(), domain=domain)
        checked += 1
    return checked


# --- Portal: members and identifiers added later ----------------------------------------------


def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Remove a person from a party. The last owner cannot be removed, so a party never loses its owners."""
    _require_party_admin(actor, membership.party)
    with transaction.atomic():
        # Lock the party's owner rows, so two admins removing the last two owners cannot both succeed.
        owners = list(
            Membership.objects.select_for_update()
            .filter(party_id=membership.party_id, role=MemberRole.OWNER)
            .values_list("pk", flat=True)
        )
        if membership.role == MemberRole.OWNER and owners == [membership.pk]:
            raise InvalidState(_("A party keeps at least one owner."), code="last_owner")
        deleted, _rows = Membership.objects.filter(pk=membership.pk).delete()
        if not deleted:
            raise InvalidState(_("This person is no longer a member."), code="not_a_member")
        audit_record(
            code="registry.membership.removed",
            actor=actor,
            target=membership.party,
            data={"user": membership.user_id, "role": membership.role},
        )


def work_identifier_add(*, actor: Actor, holder: Party, work: Work, scheme: str, value: str) -> Identifier:
    """Attach one more identifier (e.g. a file's SHA-256) to a work the holder claims.

    Money held in escrow for that identifier is released to the work's verified owners.
    """
    require_holder_actor(actor, holder)
    if not OwnershipClaim.objects.filter(work=work, holder=holder).exclude(status=ClaimStatus.REJECTED).exists():
        raise NotPermitted(_("You can add identifiers only to works you have claimed."), code="no_claim")
    key = identifier_normalize(scheme=scheme, value=value)
    existing = Identifier.objects.filter(scheme=key.scheme, value=key.value).values_list("work_id", flat=True).first()
    if existing == work.pk:
        raise InvalidState(_("The work already has this identifier."), code="identifier_exists", field="value")
    if existing is not None:
        raise _identifier_taken(key, existing)
    try:
        with transaction.atomic():
            identifier = Identifier.objects.create(
                work=work,
                scheme=key.scheme,
                value=key.value,
                spelling=key.spelling,
                **identifier_content_fields(scheme=key.scheme, value=key.value),
            )
            _identifiers_registered_on_commit([str(key)])
            event = audit_record(
                code="registry.work.identifier_added",
                actor=actor,
                target=work,
                data={"holder": holder.pk, "identifier": str(key)},
            )
            status_inputs_changed.send(sender=Identifier, work_ids=[work.pk], cause=event)
            _owners_changed_on_commit(work.pk)
    except IntegrityError:
        # Registered by someone else between the check and the insert.
        taken = Identifier.objects.filter(scheme=key.scheme, value=key.value).values_list("work_id", flat=True).first()
        raise _identifier_taken(key, taken or 0) from None
    return identifier


# --- Identifier conflicts ----------------------------------------------------------------


def identifier_conflict_resolve(
    *, actor: Actor, conflict: IdentifierConflict, resolution: str, reason: str
) -> IdentifierConflict:
    """Staff decide which work a collided key belongs to: ``kept`` leaves it with the work that holds it, ``moved``
    gives it to the work whose spelling collided (with that spelling). Each work's status is then recomputed, and
    its escrow released if it is no longer disputed."""
    require_staff(actor)
    if resolution not in ConflictResolution.values:
        raise InvalidInput(_("Choose kept or moved."), code="invalid_choice", field="resolution")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the key goes to this work."), code="required", field="reason")
    with transaction.atomic():
        # Both works' locks, in one order, as every change to a work's claims takes them.
        works = {work_id: _work_lock(work_id) for work_id in sorted({conflict.work_id, conflict.kept_by_id})}
        now = timezone.now()
        changed = IdentifierConflict.objects.filter(pk=conflict.pk, status=ConflictStatus.OPEN).update(
            status=ConflictStatus.RESOLVED,
            resolution=resolution,
            reason=reason,
            decided_by=actor.person,
            decided_at=now,
        )
        if changed != 1:
            raise InvalidState(_("This conflict is already resolved."), code="already_resolved")
        conflict.refresh_from_db()
        key = f"{conflict.scheme}:{conflict.value}"
        if resolution == ConflictResolution.MOVED:
            moved = Identifier.objects.filter(
                scheme=conflict.scheme, value=conflict.value, work_id=conflict.kept_by_id
            ).update(work_id=conflict.work_id, spelling=conflict.spelling)
            if moved != 1:
                raise InvalidState(_("The key no longer belongs to the work that held it."), code="identifier_moved")
        event = audit_record(
            code="registry.identifier.conflict_resolved",
            actor=actor,
            target=conflict,
            data={
                "identifier": key,
                "resolution": resolution,
                "work": conflict.work_id,
                "kept_by": conflict.kept_by_id,
                "reason": reason,
            },
        )
        for work in works.values():
            _work_status_refresh(actor=actor, work=work)
        status_inputs_changed.send(sender=IdentifierConflict, work_ids=sorted(works), cause=event)
        for work_id in sorted(works):
            _owners_changed_on_commit(work_id)
    return conflict


# --- Near-duplicate thresholds -----------------------------------------------------------


def similarity_threshold_set(
    *, actor: Actor, modality: str, max_distance: int, effective_from: datetime | None = None, reason: str = ""
) -> SimilarityThreshold:
    """Staff set how near a copy of a ``modality`` must be to match, from now or a later instant."""
    require_staff(actor)
    if modality not in ContentModality.values:
        raise InvalidInput(_("Unknown content modality."), code="invalid_choice", field="modality")
    if not 0 <= max_distance <= MAX_THRESHOLD:
        raise InvalidInput(
            _("The threshold is between 0 and %(max)d bits.") % {"max": MAX_THRESHOLD},
            code="out_of_range",
            field="max_distance",
        )
    now = timezone.now()
    if effective_from is not None and timezone.is_naive(effective_from):
        raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field="effective_from")
    if effective_from is not None and effective_from < now - CLOCK_SKEW:
        # Lookups as of an earlier instant answer with the threshold in force then; it cannot change afterwards.
        raise InvalidInput(
            _("This time is in the past; history cannot be rewritten."), code="in_the_past", field="effective_from"
        )
    starts = max(effective_from or now, now)
    try:
        with transaction.atomic():
            row = SimilarityThreshold.objects.create(
                modality=modality,
                max_distance=max_distance,
                effective_from=starts,
                reason=reason,
                created_by=actor.person,
            )
            audit_record(
                code="registry.similarity_threshold.set",
                actor=actor,
                target=row,
                data={"modality": modality, "max_distance": max_distance, "effective_from": starts.isoformat()},
            )
    except IntegrityError:
        raise InvalidState(
            _("This modality already has a threshold from that instant; choose another instant."),
            code="threshold_instant_taken",
            field="effective_from",
        ) from None
    return row


# --- Licensing contacts --------------------------------------------------------------


def _licensing_contact_clean(*, email: str, url: str) -> tuple[str, str]:
    """An e-mail address and an http(s) web page, each optional, validated as the forms and the API do."""
    email, url = (email or "").strip(), (url or "").strip()
    if email:
        try:
            validate_email(email)
        except DjangoValidationError:
            raise InvalidInput(
                _("Enter a valid e-mail address."), code="invalid_email", field="licensing_email"
            ) from None
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except DjangoValidationError:
            raise InvalidInput(
                _("Enter a web address starting with http:// or https://."), code="invalid_url", field="licensing_url"
            ) from None
    return email, url


def party_licensing_contact_set(*, actor: Actor, party: Party, email: str, url: str) -> Party:
    """Where to ask the holder for a licence; shown on the public page of each work it is verified to own."""
    require_holder_actor(actor, party)
    if not party.is_holder:
        raise InvalidInput(_("Only rights holders give a licensing contact."), code="not_a_holder")
    email, url = _licensing_contact_clean(email=email, url=url)
    with transaction.atomic():
        Party.objects.filter(pk=party.pk).update(licensing_email=email, licensing_url=url)
        party.licensing_email, party.licensing_url = email, url
        audit_record(
            code="registry.party.licensing_contact_set", actor=actor, target=party, data={"email": email, "url": url}
        )
    return party


def work_licensing_contact_set(*, actor: Actor, holder: Party, work: Work, email: str, url: str) -> Work:
    """A work's own licensing contact, in place of its holders'; empty values go back to the holders'.

    Only a holder with a verified claim on the work may set it: a pending claim is anyone's to file, and the
    contact is shown to everyone as the place to ask for a licence.
    """
    require_holder_actor(actor, holder)
    if not OwnershipClaim.objects.filter(work=work, holder=holder, status=ClaimStatus.VERIFIED).exists():
        raise NotPermitted(
            _("Only a rights holder whose claim on this work is verified may set its licensing contact."),
            code="claim_not_verified",
        )
    email, url = _licensing_contact_clean(email=email, url=url)
    with transaction.atomic():
        Work.objects.filter(pk=work.pk).update(licensing_email=email, licensing_url=url)
        work.licensing_email, work.licensing_url = email, url
        audit_record(
            code="registry.work.licensing_contact_set",
            actor=actor,
            target=work,
            data={"holder": holder.pk, "email": email, "url": url},
        )
    return work


# --- Claim evidence and default shares ---------------------------------------------------

_IPI = re.compile(r"^[0-9]{9,11}$")
_EVIDENCE_WITH_FILE = {EvidenceKind.REGISTRATION, EvidenceKind.CONTRACT, EvidenceKind.PUBLICATION}


def _registration_number_clean(value: str) -> str:
    """A Korea Copyright Commission registration number, C-YYYY-NNNNNN (the ``kcc`` identifier's rules)."""
    try:
        key = identifier_normalize(scheme=Scheme.KCC, value=value)
    except InvalidIdentifier as exc:
        raise InvalidInput(exc.message, code=exc.code, field="registration_number") from None
    return key.value


def _party_identifier_clean(value: str) -> str:
    compact = re.sub(r"[\s\-]", "", value or "").upper()
    if _IPI.match(compact):
        return compact
    try:
        return str(stdnum_isni.validate(compact))
    except StdnumValidationError:
        raise InvalidInput(
            _("Not an ISNI (16 characters, the last a check character) or an IPI name number (9 to 11 digits)."),
            code="invalid_format",
            field="party_identifier",
        ) from None


def claim_evidence_add(
    *,
    actor: Actor,
    claim: OwnershipClaim,
    kind: str,
    file: File[bytes] | None = None,
    filename: str = "",
    registration_number: str = "",
    party_identifier: str = "",
    text: str = "",
) -> ClaimEvidence:
    """Add a piece of evidence to a claim: by the claimant's party (on any live claim, and during a dispute each
    side on its own), or by staff. A registration certificate names its KCC registration number; an ISNI or IPI
    names the number; free text says something; a contract or publication record is a file or a text.
    """
    if not actor.is_staff:
        require_holder_actor(actor, claim.holder)
    if kind not in EvidenceKind.values:
        raise InvalidInput(_("Unknown kind of evidence."), code="invalid_choice", field="kind")
    text = (text or "").strip()
    number = _registration_number_clean(registration_number) if kind == EvidenceKind.REGISTRATION else ""
    if kind != EvidenceKind.REGISTRATION and registration_number:
        raise InvalidInput(
            _("Only a registration certificate has a registration number."),
            code="unexpected",
            field="registration_number",
        )
    identifier = ""
    if kind == EvidenceKind.ISNI_IPI:
        identifier = _party_identifier_clean(party_identifier)
    elif party_identifier:
        raise InvalidInput(_("Only ISNI or IPI evidence has that number."), code="unexpected", field="party_identifier")
    if kind == EvidenceKind.TEXT and not text:
        raise InvalidInput(_("Write the evidence."), code="required", field="text")
    if file is not None and kind not in _EVIDENCE_WITH_FILE:
        raise InvalidInput(_("This kind of evidence has no file."), code="unexpected", field="file")
    if kind in (EvidenceKind.CONTRACT, EvidenceKind.PUBLICATION) and file is None and not text:
        raise InvalidInput(_("Attach the document, or describe it."), code="required", field="file")
    if file is not None:
        upload_size_check(file, max_bytes=settings.CLAIM_EVIDENCE_MAX_UPLOAD_BYTES)
    with transaction.atomic():
        claim = OwnershipClaim.objects.select_for_update().get(pk=claim.pk)
        if claim.status == ClaimStatus.REJECTED:
            raise InvalidState(_("This claim is rejected; file a new claim instead."), code="claim_rejected")
        evidence = ClaimEvidence(
            claim=claim,
            kind=kind,
            registration_number=number,
            party_identifier=identifier,
            text=text,
            added_by=actor.person,
            added_by_staff=actor.is_staff and actor.party != claim.holder,
        )
        if file is not None:
            evidence.original_name = (filename or getattr(file, "name", "") or "")[-255:]
            evidence.content_type = (getattr(file, "content_type", "") or "application/octet-stream")[:100]
            evidence.size = int(getattr(file, "size", 0) or 0)
            # Saved through the storage API inside the transaction; a rollback leaves an orphan file, never a row
            # without its file.
            evidence.file.save("evidence", file, save=False)
        evidence.save()
        audit_record(
            code="registry.claim.evidence_added",
            actor=actor,
            target=claim,
            data={"evidence": evidence.pk, "kind": kind, "file": bool(file), "registration_number": number},
        )
    return evidence


def claim_default_share_set(*, actor: Actor, kind: str, share_bp: int) -> ClaimDefaultShare:
    """Set the share a claimant gets, for a work kind, when it names none and others already claim the work."""
    require_staff(actor)
    if kind not in _WORK_KINDS:
        raise InvalidInput(_("Unknown work kind."), code="invalid_choice", field="kind")
    if not 1 <= share_bp <= MAX_SHARE_BP:
        raise InvalidInput(
            _("The share is in basis points, from 1 to 10000 (100%)."), code="out_of_range", field="share_bp"
        )
    with transaction.atomic():
        default, _created = ClaimDefaultShare.objects.update_or_create(
            kind=kind, defaults={"share_bp": share_bp, "updated_at": timezone.now(), "updated_by": actor.person}
        )
        audit_record(
            code="registry.claim_default_share.set",
            actor=actor,
            target=default,
            data={"kind": kind, "share_bp": share_bp},
        )
    return default


# --- Conflicts between members and their agents ---------------------------------------------------------


def mandate_conflict_open(
    *,
    actor: Actor,
    kind: str,
    member: Party,
    work: Work | None,
    parties: Sequence[int | None],
    data: dict[str, Any],
) -> MandateConflict:
    """Record a conflict between a member and its agents; its work is disputed (its uses held in escrow) until
    staff resolve it. Called outside the transaction of an act it refuses, so that the conflict is kept."""
    with transaction.atomic():
        conflict = MandateConflict.objects.create(
            kind=kind,
            member=member,
            work=work,
            parties=sorted({p for p in parties if p is not None}),
            data=data,
        )
        event = audit_record(
            code="registry.mandate.conflict_opened",
            actor=actor,
            target=conflict,
            data={"kind": kind, "member": member.pk, "work": work.pk if work else None, **data},
        )
        if work is not None:
            _work_status_refresh(actor=actor, work=_work_lock(work.pk))
            status_inputs_changed.send(sender=MandateConflict, work_ids=[work.pk], cause=event)
            _owners_changed_on_commit(work.pk)
    return conflict


def mandate_conflict_resolve(*, actor: Actor, conflict: MandateConflict, reason: str) -> MandateConflict:
    """Staff resolve a conflict between a member and its agents; its work's status is recomputed."""
    require_staff(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say how the conflict was resolved."), code="required", field="reason")
    with transaction.atomic():
        work = _work_lock(conflict.work_id) if conflict.work_id is not None else None
        changed = MandateConflict.objects.filter(pk=conflict.pk, status=ConflictStatus.OPEN).update(
            status=ConflictStatus.RESOLVED, reason=reason, decided_by=actor.person, decided_at=timezone.now()
        )
        if changed != 1:
            raise InvalidState(_("This conflict is already resolved."), code="already_resolved")
        conflict.refresh_from_db()
        event = audit_record(
            code="registry.mandate.conflict_resolved", actor=actor, target=conflict, data={"reason": reason}
        )
        if work is not None:
            _work_status_refresh(actor=actor, work=work)
            status_inputs_changed.send(sender=MandateConflict, work_ids=[work.pk], cause=event)
            _owners_changed_on_commit(work.pk)
    return conflict
