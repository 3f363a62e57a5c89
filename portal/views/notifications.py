"""A person's inbox of notifications and how they want to hear them (language, which kinds by e-mail)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from core.models import NotificationKind, NotificationPreference
from core.notifications import (
    notification_preference_set,
    notification_render,
    notifications_for_user,
    notifications_mark_read,
)
from portal.views.common import paginate


class NotificationSettingsForm(forms.Form):
    language = forms.ChoiceField(label=_("Language of notifications"), choices=settings.LANGUAGES)
    email = forms.MultipleChoiceField(
        label=_("Send me these by e-mail"),
        choices=NotificationKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Every notification is in your inbox here; e-mail is sent only for the kinds ticked."),
    )


def _user_id(request: HttpRequest) -> int:
    # Only reached behind login_required: the person is signed in.
    return int(request.user.pk or 0)


@login_required
@require_http_methods(["GET", "POST"])
def inbox(request: HttpRequest) -> HttpResponse:
    """The person's notifications, newest first, in the page's language; posting marks them all read."""
    if request.method == "POST":
        notifications_mark_read(user_id=_user_id(request))
        return redirect("portal:notifications")
    page = paginate(request, notifications_for_user(user_id=_user_id(request)), per_page=25)
    language = get_language()
    rows: list[dict[str, Any]] = []
    for notification in page.object_list:
        subject, body = notification_render(kind=notification.kind, context=notification.context, language=language)
        rows.append({"notification": notification, "subject": subject, "body": body})
    return render(request, "portal/notifications/inbox.html", {"page": page, "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest) -> HttpResponse:
    current = NotificationPreference.objects.filter(user_id=_user_id(request)).first()
    muted = set(current.email_muted) if current is not None else set()
    initial = {
        "language": current.language if current is not None else (get_language() or settings.LANGUAGE_CODE)[:2],
        "email": [kind for kind in NotificationKind.values if kind not in muted],
    }
    form = NotificationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        wanted = set(form.cleaned_data["email"])
        notification_preference_set(
            user_id=_user_id(request),
            language=form.cleaned_data["language"],
            email_muted=[kind for kind in NotificationKind.values if kind not in wanted],
        )
        messages.success(request, _("Your notification settings are saved."))
        return redirect("portal:notification-settings")
    return render(request, "portal/notifications/settings.html", {"form": form})
