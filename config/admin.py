"""The admin site: behind the portal's sign-in limits, and with ``STAFF_OTP_REQUIRED`` a TOTP second factor.

Staff can settle periods, distribute escrow and verify ownership, so a guessed staff password must not
be enough: failed admin sign-ins count against the same per-account and per-address limits as the
portal's (portal/ratelimit.py), and with ``STAFF_OTP_REQUIRED`` only a session verified by one of the
person's confirmed TOTP devices (django-otp) reaches the admin.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.forms import OTPAuthenticationFormMixin

from portal import ratelimit
from registry.selectors import registry_name

# django-otp's answers to a right password that came without a token or a device: the next step, not a guess.
_OTP_STEPS = {"token_required", "device_required"}


class _LimitedLogin:
    """Refuses sign-in while the account or the client address is locked out, and counts failures."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    user_cache: Any

    def clean(self) -> dict[str, Any]:
        username = (self.cleaned_data.get("username") or "").strip()
        address = ratelimit.client_address(self.request) if self.request is not None else "-"
        wait = ratelimit.login_wait_minutes(username=username, address=address)
        if wait is not None:
            raise forms.ValidationError(
                _("Too many failed sign-in attempts. Try again in %(minutes)s minutes, or reset your password."),
                code="rate_limited",
                params={"minutes": wait},
            )
        try:
            # A mixin: clean() is the form's that follows in the MRO, which mypy cannot see from here.
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            user = self.user_cache
            # A wrong password, or with a second factor a wrong or throttled token: both are guesses. The right
            # password without a token yet is the login's first step (django-otp then lists the devices).
            second_factor_failed = (
                isinstance(self, OTPAuthenticationFormMixin)
                and user is not None
                and user.is_staff
                and getattr(exc, "code", None) not in _OTP_STEPS
            )
            if user is None or second_factor_failed:
                ratelimit.login_failed(username=username, address=address)
            raise
        ratelimit.login_succeeded(username=username, address=address)
        return cleaned


class StaffLoginForm(_LimitedLogin, AdminAuthenticationForm):
    pass


class StaffOTPLoginForm(_LimitedLogin, OTPAdminAuthenticationForm):
    pass


class RegistryAdminSite(AdminSite):
    # The registry's own name in the reader's language, not "Django administration".
    site_header = lazy(registry_name, str)()
    site_title = lazy(registry_name, str)()

    # AdminSite declares these two as class attributes; Django reads them per request, so properties that
    # follow the setting work, but mypy refuses a property over an attribute.
    @property
    def login_form(self) -> type[AdminAuthenticationForm]:  # type: ignore[override]
        return StaffOTPLoginForm if settings.STAFF_OTP_REQUIRED else StaffLoginForm

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return "otp/admin111/login.html" if settings.STAFF_OTP_REQUIRED else None

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        # OTPMiddleware sets is_verified(): true only once this session passed a device's token. Django's user
        # types do not declare it.
        return not settings.STAFF_OTP_REQUIRED or bool(request.user.is_verified())  # type: ignore[union-attr]
