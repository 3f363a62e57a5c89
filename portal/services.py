"""Writes the portal adds around the registry's own services: people's accounts and invitations.

Parties, works, refusals, keys and manifests are written by the services of ``registry``, ``optout`` and
``compensation``, exactly as the API writes them; only what has no API (signing up, joining a party, filing
one refusal per selected work at once) lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from core.errors import InvalidInput, InvalidState, NotPermitted
from optout.models import Refusal, RefusalScope
from optout.services import refusal_file
from portal.tokens import email_verification_token, invitation_read, invitation_token
from registry.audit import audit_record
from registry.models import MemberRole, Membership, Party, Work
from registry.selectors import registry_name
from registry.services import membership_add


def _mail(*, to: str, subject: str, template: str, context: dict[str, object]) -> None:
    body = render_to_string(template, {"registry_name": registry_name(), **context})
    # Sent once the transaction commits: a rolled-back sign-up sends nothing.
    transaction.on_commit(lambda: send_mail(subject, body, None, [to]))


def email_normalize(email: str) -> str:
    email = (email or "").strip()
    local, sep, domain = email.rpartition("@")
    if not sep or not local or "." not in domain:
        raise InvalidInput(_("Enter a valid e-mail address."), code="invalid_email", field="email")
    return f"{local}@{domain.lower()}"


def account_signup(*, email: str, password: str, base_url: str) -> User | None:
    """Create an inactive account and mail its verification link.

    Signing up with an address that already has an account creates nothing and tells the address's owner
    instead, so the form never reveals who has an account.
    """
    email = email_normalize(email)
    user_model = get_user_model()
    existing = user_model.objects.filter(email__iexact=email).first()
    if existing is not None:
        if not existing.is_active and existing.has_usable_password():
            _verification_mail(user=existing, base_url=base_url)
        else:
            _mail(
                to=existing.email,
                subject=str(_("Someone tried to sign up with your e-mail address")),
                template="portal/email/signup_exists.txt",
                context={"reset_url": base_url + reverse("portal:password-reset"), "email": existing.email},
            )
        return None
    try:
        validate_password(password, user=user_model(username=email, email=email))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password", field="password1") from None
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(
                username=email.lower(), email=email, password=password, is_active=False
            )
            audit_record(code="portal.account.created", actor=Actor(user=user), target=user, data={})
            _verification_mail(user=user, base_url=base_url)
    except IntegrityError:
        return None  # the same address signed up twice at once; the first one's mail is on its way
    return user


def _verification_mail(*, user: User, base_url: str) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    link = base_url + reverse(
        "portal:verify-email", kwargs={"uidb64": uid, "token": email_verification_token.make_token(user)}
    )
    _mail(
        to=user.email,
        subject=str(_("Confirm your e-mail address")),
        template="portal/email/verify.txt",
        context={"verify_url": link, "email": user.email},
    )


def account_verify_email(*, user: User, token: str) -> User:
    """Activate the account if ``token`` is its current verification token."""
    if not email_verification_token.check_token(user, token):
        raise InvalidState(_("This link is invalid or has expired. Sign up again to get a new one."))
    with transaction.atomic():
        changed = get_user_model().objects.filter(pk=user.pk, is_active=False).update(is_active=True)
        if changed:
            audit_record(code="portal.account.verified", actor=Actor(user=user), target=user, data={})
    user.is_active = True
    return user


def invitation_send(*, actor: Actor, party: Party, email: str, role: str, base_url: str) -> None:
    """Mail an invitation to join ``party``; only its owners and administrators may invite."""
    email = email_normalize(email)
    if actor.user_id is None:
        raise NotPermitted()
    if role not in MemberRole.values:
        raise InvalidInput(_("Unknown role."), field="role")
    if not Membership.objects.filter(
        party=party, user_id=actor.user_id, role__in=[MemberRole.OWNER, MemberRole.ADMIN]
    ).exists():
        raise NotPermitted(_("Only an owner or administrator of the party may invite members."))
    if (
        role == MemberRole.OWNER
        and not Membership.objects.filter(party=party, user_id=actor.user_id, role=MemberRole.OWNER).exists()
    ):
        raise NotPermitted(_("Only an owner may invite another owner."), field="role")
    if Membership.objects.filter(party=party, user__email__iexact=email).exists():
        raise InvalidState(_("This person is already a member."), code="already_member", field="email")
    token = invitation_token(party_id=party.pk, email=email, role=role, invited_by=actor.user_id)
    with transaction.atomic():
        audit_record(code="portal.invitation.sent", actor=actor, target=party, data={"email": email, "role": role})
        _mail(
            to=email,
            subject=str(_("You are invited to join %(party)s") % {"party": party.name}),
            template="portal/email/invitation.txt",
            context={
                "party": party,
                "role": MemberRole(role).label,
                "accept_url": base_url + reverse("portal:invitation", kwargs={"token": token}),
                "days": settings.PORTAL_INVITATION_DAYS,
            },
        )


def invitation_accept(*, user: User, token: str) -> Membership:
    """Join the party of a valid invitation addressed to the signed-in person's e-mail.

    The membership is added by the person who invited, so it still requires them to be an owner or
    administrator now: an invitation dies with its sender's rights.
    """
    data = invitation_read(token)
    if data is None:
        raise InvalidState(_("This invitation is invalid or has expired; ask for a new one."), code="bad_invitation")
    if data["e"].lower() != (user.email or "").lower():
        raise NotPermitted(
            _("This invitation was sent to %(email)s; sign in with that address to accept it.") % {"email": data["e"]},
            code="wrong_account",
        )
    party = Party.objects.filter(pk=data["p"]).first()
    inviter = get_user_model().objects.filter(pk=data["by"], is_active=True).first()
    if party is None or inviter is None:
        raise InvalidState(_("This invitation is invalid or has expired; ask for a new one."), code="bad_invitation")
    existing = Membership.objects.filter(party=party, user=user).first()
    if existing is not None:
        return existing
    return membership_add(actor=Actor(user=inviter, party=party), party=party, user=user, role=data["r"])


def refusals_file_for_works(
    *, actor: Actor, holder: Party, works: Sequence[Work], purposes: Sequence[str], effective_from: datetime | None
) -> list[Refusal]:
    """One work-scoped refusal per selected work, all or none."""
    if not works:
        raise InvalidInput(_("Select at least one work."), code="required", field="works")
    with transaction.atomic():
        return [
            refusal_file(
                actor=actor,
                holder=holder,
                scope=RefusalScope.WORK,
                purposes=purposes,
                work=work,
                effective_from=effective_from,
            )
            for work in works
        ]
