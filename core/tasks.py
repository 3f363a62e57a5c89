"""What every Celery task of the registry shares: its queue, which errors are worth a retry, and the preset it is
declared with, so that each task says its kind in one word and only its own limits.

Two queues, each consumed by a worker of its own (``worker`` and ``worker_long`` in the Procfile and
docker-compose.yml):

- ``long``: work that runs minutes to hours: the background jobs of ``core/jobs.py`` (usage manifests, bulk
  imports, settlements, market-share distributions, exports) and re-pricing under a new tariff. A slot of this
  worker may be held for hours.
- ``short``, Celery's default queue: seconds of work: domain checks, escrow releases, re-pricing of newly
  registered identifiers, and the periodic tasks beat publishes. Two four-hour manifests cannot make these, nor
  the sweep that keeps the jobs themselves alive, wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu import Exchange, Queue

if TYPE_CHECKING:
    from celery import Task

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_SHORT: Final = "short"
QUEUE_LONG: Final = "long"
QUEUES: Final = (QUEUE_SHORT, QUEUE_LONG)
# The settings' CELERY_TASK_QUEUES: a worker started without --queues consumes both, and a purge empties both. Each
# queue has a direct exchange of its own name, as Celery gives the queues it creates when none are declared.
TASK_QUEUES: Final = tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUES)

# A lost database connection is worth retrying (Celery does, with backoff); anything else is a bug or bad
# data, recorded on the job.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def long_task(*, soft_time_limit: int, time_limit: int, max_retries: int = 5) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task on the long queue, retried with backoff after a lost database connection (a job resumes where it
    stopped), within limits of its own: the settings' defaults are for short work.
    """
    return shared_task(
        queue=QUEUE_LONG,
        acks_late=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=True,
        max_retries=max_retries,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
    )


def short_task() -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task on the short queue, retried with backoff after a lost database connection, within the settings'
    default limits (``CELERY_TASK_SOFT_TIME_LIMIT``, ``CELERY_TASK_TIME_LIMIT``).
    """
    return shared_task(
        queue=QUEUE_SHORT, acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=True, max_retries=5
    )


def periodic_task(*, soft_time_limit: int, time_limit: int) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task beat publishes, on the short queue; never retried, since the next beat runs it again."""
    return shared_task(
        queue=QUEUE_SHORT, acks_late=True, max_retries=0, soft_time_limit=soft_time_limit, time_limit=time_limit
    )


# Retries of a notification's e-mail while the mail server fails: about an hour and a half in all, doubling from
# a minute. The inbox has it from the start.
NOTIFICATION_MAIL_RETRIES: Final = 7


@shared_task(queue=QUEUE_SHORT, acks_late=True, bind=True, max_retries=NOTIFICATION_MAIL_RETRIES)
def notifications_deliver(self: Task[[list[int]], int], notification_ids: list[int]) -> int:
    """Mail the notifications still pending; those the mail server refused are retried with backoff. Returns how
    many were mailed by this run. A row already sent is skipped, so a redelivered task mails nothing twice."""
    from core.notifications import MAIL_ERRORS, notification_deliver, notification_give_up

    sent = 0
    failed: list[int] = []
    last_error = ""
    for notification_id in notification_ids:
        try:
            sent += notification_deliver(notification_id=notification_id)
        except MAIL_ERRORS as exc:
            failed.append(notification_id)
            last_error = f"{type(exc).__name__}: {exc}"
    if failed:
        if self.request.retries >= NOTIFICATION_MAIL_RETRIES:
            for notification_id in failed:
                notification_give_up(notification_id=notification_id, error=last_error)
            return sent
        raise self.retry(args=(failed,), countdown=60 * 2**self.request.retries)
    return sent
