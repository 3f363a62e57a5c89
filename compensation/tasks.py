"""Celery adapters: take primary keys, call a service. No business rules here."""

from __future__ import annotations

from compensation.ledger import escrow
from compensation.settlement import distribution
from compensation.settlement import services as settlements
from compensation.usage import services as usage
from core.tasks import long_task, periodic_task, short_task


@long_task(soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300)
def usage_manifest_run(manifest_id: int) -> None:
    # Resumable: the manifest's cursor advances with each committed chunk, so a retried or
    # redelivered task continues where the last one stopped.
    usage.usage_manifest_process(manifest_id=manifest_id)


@periodic_task(soft_time_limit=120, time_limit=180)
def usage_manifests_resume() -> int:
    return usage.usage_manifests_resume_stalled()


@long_task(soft_time_limit=30 * 60, time_limit=35 * 60)
def usage_reprice(tariff_id: int) -> int:
    # Every unpriced line of the tariff's kind since it took effect: minutes on a large ledger, so on the long
    # queue, with the limits of the settings' defaults.
    return usage.usage_reprice(tariff_id=tariff_id)


@short_task()
def usage_reprice_keys(keys: list[str]) -> int:
    # Takes identifier texts, not rows: the lines they name are found and locked by the service.
    return usage.usage_reprice_keys(keys=keys)


@short_task()
def escrow_release(work_id: int) -> int:
    return escrow.escrow_release_for_work(work_id=work_id)


@long_task(soft_time_limit=3600, time_limit=3600 + 300)
def settlement_run(settlement_id: int) -> str:
    # Each step commits; a retried or redelivered task continues after the last finished one.
    return settlements.settlement_run(settlement_id=settlement_id).status


@long_task(soft_time_limit=3600, time_limit=3600 + 300)
def distribution_execute(distribution_id: int) -> int:
    # One transaction, and a finished distribution is never run again: redelivery is harmless.
    return distribution.distribution_execute(distribution_id=distribution_id).distributed_micro


@long_task(soft_time_limit=1800, time_limit=1800 + 120, max_retries=3)
def export_run(export_id: int) -> str | None:
    # A finished export is left as it is: redelivery is harmless.
    from compensation.documents import services as documents_services

    export = documents_services.export_execute(export_id=export_id)
    return export.status if export is not None else None
