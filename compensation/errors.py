"""Compensation's domain errors, rendered like every other ``RegistryError``."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.errors import RegistryError


class LedgerError(RegistryError):
    """A posting the ledger refuses. ``code`` says why:

    ``unbalanced`` (fewer than two lines, a zero line, or lines that do not sum to zero),
    ``idempotency_conflict`` (the key was used before for other lines), ``already_reversed``,
    ``invalid_account``.
    """

    code = "ledger_error"
    status = 409
    default_message = _("The ledger refused this posting.")


class ManifestConflict(RegistryError):
    """The lab already sent a manifest with this id, with other content."""

    code = "manifest_id_conflict"
    status = 409
    default_message = _("A manifest with this manifest_id was already submitted with different content.")


class ManifestTooLarge(RegistryError):
    code = "too_many_lines"
    status = 413
    default_message = _("The manifest has too many lines.")


class SettlementError(RegistryError):
    """A settlement refused or failed. ``code``: ``settlement_overlap`` (another settlement covers part of
    the period), ``settlement_untraced`` (the ledger and the manifest lines disagree),
    ``settlement_inconsistent``.
    """

    code = "settlement_error"
    status = 409
    default_message = _("The settlement could not be run.")
