"""Celery adapters: take primary keys, refetch, call a service. No business rules here."""

from __future__ import annotations

from celery import shared_task

from registry import services
from registry.imports import work_import_process


@shared_task(acks_late=True, max_retries=5, default_retry_delay=30, soft_time_limit=3600, time_limit=3900)
def work_import_run(import_id: int) -> None:
    # Resumable: the import's row cursor advances with each committed chunk, so a retried
    # or redelivered task continues where the last one stopped.
    work_import_process(import_id=import_id)


@shared_task(acks_late=True, max_retries=5, default_retry_delay=30)
def domain_claims_verify(domain_id: int) -> int:
    return services.domain_claims_verify(domain_id=domain_id)


@shared_task(acks_late=True, max_retries=0, soft_time_limit=600, time_limit=660)
def domains_recheck_pending() -> int:
    return services.domains_recheck_pending()
