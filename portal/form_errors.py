"""Domain errors onto form fields: a service's ``RegistryError`` names the field it is about, and the form
shows the message next to that field, keeping everything the person typed."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms

from core.errors import RegistryError


def error_to_form(form: forms.BaseForm, error: RegistryError, *, fields: Mapping[str, str] | None = None) -> None:
    """Attach ``error`` to the field it names (through ``fields`` when the service's name differs)."""
    name = error.field or ""
    name = (fields or {}).get(name, name)
    message = str(error.message)
    if name in form.fields:
        form.add_error(name, forms.ValidationError(message, code=error.code))
    else:
        form.add_error(None, forms.ValidationError(message, code=error.code))
