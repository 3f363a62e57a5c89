"""Real Celery worker processes for tests: the Procfile's worker of a queue (``core.tasks.QUEUE_LONG`` for jobs,
``QUEUE_SHORT`` for the rest) against the test database and Redis.

Only for tests marked ``redis`` and ``django_db(transaction=True)``: the worker is another process, so it
sees only what the test has committed. Messages go through the broker, so the test process must not run
tasks eagerly; ``CeleryWorkers`` switches that off and clears the broker before and after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from django.db import connection

from config.celery import app as celery_app
from tests.shipped import option_replaced, procfile_command, procfile_worker

ROOT = Path(__file__).resolve().parents[1]


def worker_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker that uses the test database and ``data_dir`` (as ``DATA_DIR``, so its
    ``MEDIA_ROOT`` is the test's ``tmp_path / "media"``).
    """
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "REGISTRY_TESTING": "1",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        **extra,
    }


def broker_clear() -> None:
    """Drop queued messages and those a dead worker left unacknowledged (the Redis transport would deliver
    those again only after its visibility timeout, possibly into a later test run).
    """
    celery_app.control.purge()
    with celery_app.connection_for_write() as conn:
        channel: Any = conn.default_channel  # kombu's Redis channel has a client and the unacked keys
        client = getattr(channel, "client", None)
        if client is not None and hasattr(channel, "unacked_key"):
            client.delete(channel.unacked_key, channel.unacked_index_key)


class CeleryWorkers:
    """Starts worker processes on demand; on exit stops those still running (warm, then killed) and clears
    the broker. Each worker logs to ``data_dir / "<name>.log"``.
    """

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = env
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[Path] = []

    def __enter__(self) -> CeleryWorkers:
        celery_app.conf.task_always_eager = False
        broker_clear()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for _name, worker in self.started:
            if worker.poll() is None:
                worker.terminate()
        for _name, worker in self.started:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(worker)
            # A pool process orphaned by a killed worker must not outlive the test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        broker_clear()

    def start(self, name: str = "worker", *, queue: str, queues: str = "", **env: str) -> subprocess.Popen[bytes]:
        """Start a worker named ``name`` with the command the Procfile ships for the worker of ``queue``
        (``core.tasks.QUEUE_LONG`` runs manifests, imports, settlements, distributions and exports), consuming
        ``queues`` instead of its own if given (comma-separated, e.g. a stand-by queue nothing is sent to).

        Only ``--hostname`` (so that several workers on one machine are told apart) and ``--queues`` are replaced
        in the shipped command. The worker leads a process group of its own: ``kill`` ends it with its pool
        processes and whatever they started, as a crash of its machine or container would.
        """
        log_path = self.data_dir / f"{name}.log"
        self._logs.append(log_path)
        command = option_replaced(procfile_command(procfile_worker(queue)), "--hostname", self.hostname(name))
        if queues:
            command = option_replaced(command, "--queues", queues)
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                command,
                cwd=ROOT,
                env=worker_env(self.data_dir, **self.env, **env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, worker))
        return worker

    @staticmethod
    def kill(worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and every process of its group (pool processes, their parsing processes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    @staticmethod
    def hostname(name: str) -> str:
        return f"{name}@{socket.gethostname()}"

    def consume(self, name: str, queue: str, *, timeout: float = 60) -> None:
        """Make the running worker ``name`` consume ``queue`` as well (a remote-control command), e.g. to
        put a worker started earlier on stand-by in the place of one that died.
        """
        assert self.wait_for_log(name, " ready.", timeout=timeout), self.log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = celery_app.control.add_consumer(queue, destination=[self.hostname(name)], reply=True, timeout=5)
            if replies:
                return
        raise AssertionError(f"{name} did not answer add_consumer:\n" + self.log(name))

    def log(self, name: str | None = None) -> str:
        """The log of worker ``name``, or of every worker started, for assertion messages."""
        paths = [self.data_dir / f"{name}.log"] if name else self._logs
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in paths if path.exists())

    def wait_for_log(self, name: str, text: str, *, count: int = 1, timeout: float = 60) -> bool:
        """Whether worker ``name``'s log shows ``text`` ``count`` times within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log(name).count(text) >= count:
                return True
            time.sleep(0.2)
        return False
