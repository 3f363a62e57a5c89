"""Celery adapters: take primary keys, refetch, call a service. No business rules here."""

from __future__ import annotations

from core.jobs import jobs_sweep as jobs_sweep_run
from core.tasks import long_task, periodic_task, short_task
from registry import services
from registry.imports import work_import_process, work_imports_resume_stalled
from registry.similarity import similarity_index_refresh_if_needed
from registry.work_files import work_file_fingerprint as work_file_fingerprint_run


@long_task(soft_time_limit=3600, time_limit=3900)
def work_import_run(import_id: int) -> None:
    # Resumable: the import's row cursor advances with each committed chunk, so a retried
    # or redelivered task continues where the last one stopped.
    work_import_process(import_id=import_id)


@long_task(soft_time_limit=3600, time_limit=3900)
def work_file_fingerprint(work_file_id: int) -> None:
    # Done in one piece: a retried or redelivered task reads the file again; identifiers the work already
    # holds are left as they are, so the result is that of one run.
    work_file_fingerprint_run(work_file_id=work_file_id)


@periodic_task(soft_time_limit=120, time_limit=180)
def work_imports_resume() -> int:
    # Kept for beat schedules of earlier releases; jobs_sweep does this for every kind of job.
    return work_imports_resume_stalled()


@periodic_task(soft_time_limit=50, time_limit=55)
def jobs_sweep() -> int:
    # Every minute: publish jobs the broker never took, queue again those whose worker died.
    return jobs_sweep_run()


@short_task()
def domain_claims_verify(domain_id: int) -> int:
    return services.domain_claims_verify(domain_id=domain_id)


@periodic_task(soft_time_limit=600, time_limit=660)
def domains_recheck_pending() -> int:
    return services.domains_recheck_pending()


@periodic_task(soft_time_limit=1800, time_limit=1900)
def similarity_index_refresh() -> int:
    # Rebuilds the near-duplicate base only when enough codes are new; returns how many the delta held.
    return similarity_index_refresh_if_needed()
