"""Errors of refusals and lookups, rendered by the registry's one API error handler."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.errors import RegistryError


class TooManyItems(RegistryError):
    code = "too_many_items"
    status = 413
    default_message = _("Too many items in one request; split it.")


class LookupUnavailable(RegistryError):
    """Never fail open: when the registry cannot be read, nothing is answered."""

    code = "lookup_unavailable"
    status = 503
    default_message = _("The registry could not be read; nothing was answered. Try again.")
