"""Telling people what happened: one inbox row per person and event, mailed by a task in the person's language.

``notification_create`` is called inside the transaction of the event it tells about, so a rolled-back event
tells nothing; its ``key`` names the event, and the pair (person, key) is unique in the database: whatever runs
twice (a retried task, a release that finds nothing new, a signal sent again) records it once. The e-mail is sent
after commit by ``core.tasks.notifications_deliver``, retried with backoff while the mail server fails; a row
already sent is never sent again. Only a worker dying between the mail server's acceptance and the commit of
"sent" can mail it twice (the mail protocol has no idempotency key).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import QuerySet
from django.utils import formats, timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.errors import InvalidInput
from core.models import EmailState, Notification, NotificationKind, NotificationPreference

logger = logging.getLogger(__name__)

# Errors of the mail server or the network: worth a retry. Anything else is a bug, and is raised.
MAIL_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)
# How many notifications one delivery task mails: a settlement tells thousands of holders at once.
DELIVERY_BATCH = 200


@dataclass(frozen=True)
class Message:
    subject: str | Promise
    body: str | Promise


# %(name)s placeholders name keys of the notification's context; amounts (``*_micro``) are shown in won.
MESSAGES: dict[str, Message] = {
    NotificationKind.CLAIM_VERIFIED: Message(
        _("Your claim to “%(work_title)s” is verified"),
        _(
            "Registry staff verified your claim to %(share)s of “%(work_title)s”. Money held for the work is "
            "released to you, and its next uses are paid to you."
        ),
    ),
    NotificationKind.CLAIM_REJECTED: Message(
        _("Your claim to “%(work_title)s” was rejected"),
        _("Registry staff rejected your claim to “%(work_title)s”.\n\nReason: %(reason)s"),
    ),
    NotificationKind.CLAIM_DISPUTED: Message(
        _("“%(work_title)s” is disputed"),
        _(
            "Claims to “%(work_title)s” add up to more than 100%%. Staff opened a dispute: payments for the work "
            "are held in escrow until they decide. Add evidence to your claim in the portal."
        ),
    ),
    NotificationKind.REFUSAL_IN_FORCE: Message(
        _("Your refusal of AI training is in force"),
        _("Your refusal of AI training (%(purpose)s) for %(target)s is in force from %(effective_at)s."),
    ),
    NotificationKind.REFUSAL_WITHDRAWN: Message(
        _("Your refusal of AI training is withdrawn"),
        _("Your refusal of AI training (%(purpose)s) for %(target)s is withdrawn from %(effective_at)s."),
    ),
    NotificationKind.VIOLATION_RECORDED: Message(
        _("A use of your refused work was recorded"),
        _(
            "%(lab)s reported %(lines)s use(s) of works you had refused when they were used (manifest "
            "%(manifest)s). They are recorded as violations: %(amount_micro)s at the tariff."
        ),
    ),
    NotificationKind.ESCROW_RELEASED: Message(
        _("Money released to you: %(amount_micro)s"),
        _(
            "%(amount_micro)s held in escrow for “%(work_title)s” was released to you. It is paid with your next "
            "statement."
        ),
    ),
    NotificationKind.STATEMENT_READY: Message(
        _("Your statement for %(period)s is ready"),
        _("Your statement for %(period)s is ready. Amount due: %(due_micro)s; paid out: %(payout_micro)s."),
    ),
    NotificationKind.CONSOLIDATED_STATEMENT_READY: Message(
        _("Your consolidated statement for %(period)s is ready"),
        _(
            "Your consolidated statement for %(period)s is ready: one section for each of the %(members)s "
            "member(s) whose statements you receive. Amount due: %(due_micro)s; paid out: %(payout_micro)s, of "
            "which %(paid_to_agent_micro)s to you."
        ),
    ),
    NotificationKind.PAYOUT_MADE: Message(
        _("Payout made: %(payout_micro)s"),
        _("%(payout_micro)s was paid out to you for %(period)s (withheld: %(withheld_micro)s)."),
    ),
    NotificationKind.MANIFEST_PROCESSED: Message(
        _("Usage manifest %(manifest)s processed"),
        _(
            "Your usage manifest %(manifest)s (%(model)s) is processed: %(lines)s lines. The outcomes are in the "
            "portal."
        ),
    ),
    NotificationKind.MANIFEST_FAILED: Message(
        _("Usage manifest %(manifest)s failed"),
        _("Your usage manifest %(manifest)s (%(model)s) could not be processed.\n\nReason: %(reason)s"),
    ),
    NotificationKind.INVOICE_READY: Message(
        _("Your invoice for %(period)s is ready"),
        _("Your invoice for %(period)s is ready. Amount due: %(due_micro)s."),
    ),
    NotificationKind.SITE_DISAGREEMENT: Message(
        _("%(domain)s says something other than your refusals"),
        _(
            "What %(domain)s publishes (robots.txt, tdmrep.json, headers) disagrees with the refusals you filed "
            "in %(count)s place(s):\n\n%(details)s"
        ),
    ),
    NotificationKind.PAYOUT_PROFILE_CHANGED: Message(
        _("The payout details of %(party)s were changed"),
        _(
            "The payout details (payee, bank account or tax status) of %(party)s were changed at %(changed_at)s. "
            "If nobody you know did this, tell the registry at once."
        ),
    ),
}

_PLACEHOLDER_DEFAULT = pgettext_lazy("notification value that is missing", "(not given)")


def _won(amount_micro: Any) -> str:
    won = (Decimal(int(amount_micro)) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    whole = won == won.to_integral_value()
    return "₩" + formats.number_format(won, decimal_pos=0 if whole else 2, use_l10n=True, force_grouping=True)


def _render_values(context: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in context.items():
        if name.endswith("_micro") and value is not None:
            values[name] = _won(value)
        elif name == "target" and not value:
            values[name] = str(_("your whole catalogue"))
        else:
            values[name] = str(value)
    return values


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return str(_PLACEHOLDER_DEFAULT)


def notification_render(*, kind: str, context: Mapping[str, Any], language: str | None = None) -> tuple[str, str]:
    """The subject and body of a notification, in ``language`` (the active one if not given)."""
    message = MESSAGES[kind]
    with translation.override(language or translation.get_language()):
        values = _Values(_render_values(context))
        return str(message.subject) % values, str(message.body) % values


def notification_language(*, user_id: int) -> str:
    """The language a person reads notifications in: theirs if they chose one, else the registry's."""
    chosen = NotificationPreference.objects.filter(user_id=user_id).values_list("language", flat=True).first()
    return chosen or settings.LANGUAGE_CODE


def notification_create(
    *,
    user_ids: Iterable[int],
    kind: str,
    key: str,
    context: Mapping[str, Any],
    party_id: int | None = None,
) -> int:
    """Record that ``kind`` happened (``key`` names the event) for each person, once, and mail it after commit.

    Returns how many rows are new. Safe to call again with the same key: nothing new is recorded or sent.
    """
    if kind not in MESSAGES:
        raise InvalidInput(_("Unknown notification kind."), code="invalid_choice", field="kind")
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    key = key[:200]
    now = timezone.now()
    with transaction.atomic():
        existing = set(Notification.objects.filter(user_id__in=ids, key=key).values_list("user_id", flat=True))
        rows = [
            Notification(user_id=user_id, party_id=party_id, kind=kind, key=key, context=dict(context), created_at=now)
            for user_id in ids
            if user_id not in existing
        ]
        # A concurrent call with the same key loses the race on the unique (user, key) and records nothing.
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        if rows:
            new_ids = list(
                Notification.objects.filter(
                    user_id__in=[row.user_id for row in rows], key=key, email_state=EmailState.PENDING
                ).values_list("pk", flat=True)
            )
            transaction.on_commit(lambda: notifications_enqueue(notification_ids=new_ids))
    return len(rows)


def notifications_enqueue(*, notification_ids: Sequence[int]) -> None:
    from core.tasks import notifications_deliver

    for start in range(0, len(notification_ids), DELIVERY_BATCH):
        notifications_deliver.delay(list(notification_ids[start : start + DELIVERY_BATCH]))


def notification_deliver(*, notification_id: int) -> bool:
    """Mail one notification if it is still pending; True if this call mailed it. Raises a mail error for a retry.

    The row is locked while the mail is handed to the server, so two deliveries of the same task mail it once.
    """
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update().select_related("user").filter(pk=notification_id).first()
        )
        if notification is None or notification.email_state != EmailState.PENDING:
            return False
        user = notification.user
        preference = NotificationPreference.objects.filter(user=user).first()
        muted = preference is not None and notification.kind in (preference.email_muted or [])
        if muted or not user.email or not user.is_active:
            notification.email_state = EmailState.SKIPPED
            notification.save(update_fields=["email_state"])
            return False
        language = preference.language if preference is not None else settings.LANGUAGE_CODE
        subject, body = notification_render(kind=notification.kind, context=notification.context, language=language)
        notification.email_attempts += 1
        failure: BaseException | None = None
        try:
            EmailMessage(
                subject=subject,
                body=body,
                to=[user.email],
                connection=get_connection(fail_silently=False),
                headers={"Content-Language": language},
            ).send()
        except MAIL_ERRORS as exc:
            failure = exc
        if failure is not None:
            # The attempt is recorded (committed with this transaction); the error is raised for a retry after it.
            notification.email_error = f"{type(failure).__name__}: {failure}"[:2000]
            notification.save(update_fields=["email_attempts", "email_error"])
        else:
            notification.email_state = EmailState.SENT
            notification.emailed_at = timezone.now()
            notification.email_error = ""
            notification.save(update_fields=["email_state", "emailed_at", "email_attempts", "email_error"])
    if failure is not None:
        raise failure
    return True


def notification_give_up(*, notification_id: int, error: str) -> None:
    """The last retry failed: the inbox keeps the notification, the e-mail is marked failed."""
    Notification.objects.filter(pk=notification_id, email_state=EmailState.PENDING).update(
        email_state=EmailState.FAILED, email_error=error[:2000]
    )


def notifications_mark_read(*, user_id: int, notification_ids: Iterable[int] | None = None) -> int:
    """Mark the person's notifications read (all of them, or those named); returns how many changed."""
    rows = Notification.objects.filter(user_id=user_id, read_at__isnull=True)
    if notification_ids is not None:
        rows = rows.filter(pk__in=list(notification_ids))
    return rows.update(read_at=timezone.now())


def notification_preference_set(*, user_id: int, language: str, email_muted: Iterable[str]) -> NotificationPreference:
    """Set a person's notification language and the kinds they do not want by e-mail."""
    if language not in {code for code, _name in settings.LANGUAGES}:
        raise InvalidInput(_("Unknown language."), code="invalid_choice", field="language")
    muted = sorted(set(email_muted))
    unknown = [kind for kind in muted if kind not in NotificationKind.values]
    if unknown:
        raise InvalidInput(_("Unknown notification kind."), code="invalid_choice", field="email_muted")
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise InvalidInput(_("No such user."), code="invalid", field="user")
    preference, _created = NotificationPreference.objects.update_or_create(
        user_id=user_id, defaults={"language": language, "email_muted": muted, "updated_at": timezone.now()}
    )
    return preference


def notifications_for_user(*, user_id: int) -> QuerySet[Notification]:
    """A person's notifications, newest first."""
    return Notification.objects.filter(user_id=user_id).order_by("-created_at", "-pk")


def notifications_unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()
