"""Encryption at rest of payout profiles' bank account and tax numbers (Fernet: AES-128-CBC with HMAC-SHA256).

Imported by ``config.settings`` to check ``PAYOUT_DATA_KEYS`` at start-up, so this module imports no models.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured


def payout_keys_check(keys: list[str]) -> None:
    """Fail the start-up, naming the variable, unless every key is a valid Fernet key."""
    if not keys:
        raise ImproperlyConfigured("PAYOUT_DATA_KEYS must be set (it has no default outside DEBUG).")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ImproperlyConfigured(
                f"PAYOUT_DATA_KEYS: key {position} is not a Fernet key (32 bytes in url-safe base64)."
            ) from None


def _cipher() -> MultiFernet:
    from django.conf import settings

    return MultiFernet([Fernet(key.encode("ascii")) for key in settings.PAYOUT_DATA_KEYS])


def secret_encrypt(plain: str) -> str:
    """The Fernet token of ``plain`` under the first key: random IV, so equal numbers never look equal."""
    return _cipher().encrypt(plain.encode("utf-8")).decode("ascii")


def secret_decrypt(token: str) -> str:
    """The text behind ``token``, under whichever configured key made it."""
    try:
        return _cipher().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ImproperlyConfigured(
            "A payout profile was encrypted with a key that PAYOUT_DATA_KEYS no longer holds."
        ) from None
