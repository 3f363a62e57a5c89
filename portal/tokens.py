"""One-time links: e-mail verification (Django's token machinery) and invitations (signed, expiring)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import signing


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Valid until the account is activated (``is_active`` is in the hash) or PASSWORD_RESET_TIMEOUT passes."""

    key_salt = "portal.tokens.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        return f"{user.pk}{user.is_active}{user.email}{timestamp}"


email_verification_token = EmailVerificationTokenGenerator()

_INVITATION_SALT = "portal.invitation"


def invitation_token(*, party_id: int, email: str, role: str, invited_by: int) -> str:
    return signing.dumps({"p": party_id, "e": email, "r": role, "by": invited_by}, salt=_INVITATION_SALT)


def invitation_read(token: str) -> dict[str, Any] | None:
    """The invitation's content, or None when the link is forged or older than PORTAL_INVITATION_DAYS."""
    try:
        data: dict[str, Any] = signing.loads(
            token, salt=_INVITATION_SALT, max_age=settings.PORTAL_INVITATION_DAYS * 24 * 3600
        )
    except signing.BadSignature:
        return None
    return data


def user_for_token(user: User | None, token: str) -> bool:
    return user is not None and email_verification_token.check_token(user, token)
