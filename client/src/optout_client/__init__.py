"""Lab-side client of the AI-training opt-out registry.

Today it holds the identifier normalizer, rule for rule the server's: see :mod:`optout_client.normalize`.
"""

from optout_client.normalize import (
    SCHEMES,
    IdentifierKey,
    InvalidIdentifier,
    SchemeUnavailable,
    identifier_normalize,
    iscc_available,
)

__all__ = [
    "SCHEMES",
    "IdentifierKey",
    "InvalidIdentifier",
    "SchemeUnavailable",
    "identifier_normalize",
    "iscc_available",
]
