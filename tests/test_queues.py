"""The two Celery queues (core/tasks.py): every task is published to its queue, and a shipped worker takes it.

Work that runs minutes to hours (manifests, imports, settlements, distributions, exports, re-pricing under a new
tariff) goes to the long queue and its own worker, so that it cannot hold every slot of the worker that runs
domain checks, escrow releases and what beat publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from config.celery import app as celery_app
from core.jobs import job_kinds, job_publish
from core.tasks import QUEUE_LONG, QUEUE_SHORT, QUEUES
from tests.shipped import compose_command, option_value, procfile_command, procfile_worker
from tests.workers import CeleryWorkers, broker_clear

# Every task of the project, its queue and arguments it can be published with (Celery checks them against the
# task's signature). A task added without a line here fails test_every_task_has_a_queue_here.
TASKS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "registry.tasks.work_import_run": (QUEUE_LONG, (1,)),
    "registry.tasks.work_file_fingerprint": (QUEUE_LONG, (1,)),
    "compensation.tasks.usage_manifest_run": (QUEUE_LONG, (1,)),
    "compensation.tasks.settlement_run": (QUEUE_LONG, (1,)),
    "compensation.tasks.distribution_execute": (QUEUE_LONG, (1,)),
    "compensation.tasks.export_run": (QUEUE_LONG, (1,)),
    "compensation.tasks.usage_reprice": (QUEUE_LONG, (1,)),
    "optout.tasks.snapshot_build": (QUEUE_LONG, (1,)),
    "registry.tasks.domain_claims_verify": (QUEUE_SHORT, (1,)),
    "compensation.tasks.escrow_release": (QUEUE_SHORT, (1,)),
    "compensation.tasks.usage_reprice_keys": (QUEUE_SHORT, (["isbn:9788936434021"],)),
    "registry.tasks.jobs_sweep": (QUEUE_SHORT, ()),
    "registry.tasks.domains_recheck_pending": (QUEUE_SHORT, ()),
    "registry.tasks.work_imports_resume": (QUEUE_SHORT, ()),
    "compensation.tasks.usage_manifests_resume": (QUEUE_SHORT, ()),
    "optout.tasks.webhook_delivery_send": (QUEUE_SHORT, (1,)),
    "optout.tasks.webhook_endpoints_advance": (QUEUE_SHORT, ()),
    "optout.tasks.webhooks_sweep": (QUEUE_SHORT, ()),
    "optout.tasks.log_checkpoint": (QUEUE_SHORT, ()),
    "optout.tasks.snapshot_scheduled": (QUEUE_SHORT, ()),
    "optout.tasks.domain_signals_observe": (QUEUE_SHORT, (1, "scheduled")),
    "optout.tasks.domain_signals_recheck": (QUEUE_SHORT, ()),
    "registry.tasks.similarity_index_refresh": (QUEUE_SHORT, ()),
    "core.tasks.notifications_deliver": (QUEUE_SHORT, ([1],)),
}


@pytest.fixture
def published() -> Iterator[mock.MagicMock]:
    """Tasks published, not run: the last step of Celery's publishing (after its router) is recorded instead."""
    celery_app.conf.task_always_eager = False
    with mock.patch.object(celery_app.amqp, "send_task_message") as send:
        yield send


def queues_of(send: mock.MagicMock) -> dict[str, str]:
    """The queue each recorded message went to, by task name."""
    return {call.args[1]: call.kwargs["queue"].name for call in send.call_args_list}


def test_every_task_has_a_queue_here() -> None:
    celery_app.loader.import_default_modules()
    assert {name for name in celery_app.tasks if not name.startswith("celery.")} == set(TASKS)


def test_every_task_is_published_to_its_queue(published: mock.MagicMock) -> None:
    celery_app.loader.import_default_modules()
    for name, (_queue, arguments) in TASKS.items():
        celery_app.tasks[name].apply_async(arguments)

    assert queues_of(published) == {name: queue for name, (queue, _arguments) in TASKS.items()}


@pytest.mark.django_db
def test_every_kind_of_job_is_published_to_the_long_queue(published: mock.MagicMock) -> None:
    kinds = job_kinds()
    for kind in kinds:
        assert job_publish(kind=kind, job_id=1)

    assert queues_of(published) == {kind.task: QUEUE_LONG for kind in kinds}
    assert {kind.name for kind in kinds} == {
        "compensation.usagemanifest",
        "registry.workimport",
        "registry.workfile",
        "compensation.settlement",
        "compensation.marketsharedistribution",
        "compensation.export",
        "optout.snapshot",
    }


def test_a_task_without_a_preset_goes_to_the_short_queue(published: mock.MagicMock) -> None:
    celery_app.send_task("registry.tasks.no_such_task")

    assert queues_of(published) == {"registry.tasks.no_such_task": QUEUE_SHORT}


@pytest.mark.parametrize("queue", QUEUES)
def test_one_shipped_worker_consumes_each_queue(queue: str) -> None:
    process = procfile_worker(queue)
    command = procfile_command(process)

    assert option_value(command, "--queues") == queue
    assert compose_command(process) == command  # the service has the process's name and command


# --- Through Redis -----------------------------------------------------------------------------------


def messages_in(queue: str) -> list[str]:
    """The task names of the messages waiting in ``queue`` (a Redis list, as kombu's Redis transport keeps it)."""
    with celery_app.connection_for_write() as conn:
        channel: Any = conn.default_channel  # kombu's Redis channel, which has a client
        return [json.loads(message)["headers"]["task"] for message in channel.client.lrange(queue, 0, -1)]


@pytest.fixture
def broker() -> Iterator[None]:
    celery_app.conf.task_always_eager = False
    broker_clear()
    yield
    broker_clear()


@pytest.mark.redis
@pytest.mark.django_db
def test_jobs_wait_in_the_long_queue_and_short_tasks_in_the_short_one(broker: None) -> None:
    for kind in job_kinds():
        assert job_publish(kind=kind, job_id=1)
    celery_app.tasks["compensation.tasks.escrow_release"].delay(1)
    celery_app.tasks["registry.tasks.jobs_sweep"].delay()

    assert sorted(messages_in(QUEUE_LONG)) == sorted(kind.task for kind in job_kinds())
    assert sorted(messages_in(QUEUE_SHORT)) == ["compensation.tasks.escrow_release", "registry.tasks.jobs_sweep"]


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_long_worker_leaves_short_tasks_to_the_short_worker(tmp_path: Path) -> None:
    # Both tasks find nothing to do (no tariff 1, no work 1) and return 0: only who runs them matters here.
    short, long = "compensation.tasks.escrow_release", "compensation.tasks.usage_reprice"
    with CeleryWorkers(tmp_path) as workers:
        workers.start("long", queue=QUEUE_LONG)
        celery_app.tasks[short].delay(1)
        celery_app.tasks[long].delay(1)

        assert workers.wait_for_log("long", f"{long}["), workers.log()
        assert workers.wait_for_log("long", " succeeded in "), workers.log()
        assert messages_in(QUEUE_SHORT) == [short]

        workers.start("short", queue=QUEUE_SHORT)
        assert workers.wait_for_log("short", " succeeded in "), workers.log()
        # A worker's log names a task it received as name[id]; its banner lists every task by name alone.
        assert f"{short}[" in workers.log("short")
        assert f"{short}[" not in workers.log("long")
        assert f"{long}[" not in workers.log("short")
