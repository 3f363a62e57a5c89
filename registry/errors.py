"""The registry's own domain errors: identifiers, ownership and domains."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.errors import RegistryError


class InvalidIdentifier(RegistryError):
    """An identifier failed validation. ``code`` says why (e.g. ``invalid_checksum``)."""

    code = "invalid_identifier"
    default_message = _("The identifier is not valid.")


class IdentifierTaken(RegistryError):
    code = "identifier_taken"
    status = 409
    default_message = _("Another work already holds this identifier; claim that work instead.")


class Overclaim(RegistryError):
    code = "overclaim"
    status = 409
    default_message = _("Verified shares of this work would exceed 100%.")


class DomainCheckFailed(RegistryError):
    code = "domain_check_failed"
    status = 422
    default_message = _("The domain could not be verified.")
