"""Running a producer one step ahead of its consumer, in a thread or in a process."""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

from core.errors import RegistryError

T = TypeVar("T")


class _Done:
    """The producer's last word: nothing follows."""


_DONE = _Done()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextmanager
def prefetched(items: Iterator[T], *, depth: int = 1) -> Iterator[Iterator[T]]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the caller.

    Worth it when producing (parsing, in Python) and consuming (waiting on the database, which releases the
    GIL) take turns on the CPU. An exception in the producer is raised in the caller at the item where it
    happened; leaving the block early stops the producer. ``items`` must not share state with the caller.
    """
    handoff: queue.Queue[T | _Failure | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _Failure | _Done) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failure(error))
            return
        put(_DONE)

    def consume() -> Iterator[T]:
        while True:
            item = handoff.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


class ProducerFailed(Exception):
    """The producer process raised: its exception's type name, message and traceback, as text, and the code of a
    domain error (``core.errors.RegistryError``)."""

    def __init__(self, kind: str, message: str, details: str, code: str = "", field: str | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.details, self.code, self.field = kind, message, details, code, field

    def registry_error(self) -> RegistryError | None:
        """The domain error the producer raised, made again from its class name, message, code and field; None
        when it raised anything else (a bug, or the file gone), which is the caller's to raise."""
        pending: list[type[RegistryError]] = [RegistryError]
        while pending:
            error = pending.pop()
            if error.__name__ == self.kind:
                # Made as the base class makes it: a subclass's own constructor may take other arguments.
                made = error.__new__(error)
                RegistryError.__init__(made, self.message, code=self.code or error.code, field=self.field)
                return made
            pending += error.__subclasses__()
        return None


@contextmanager
def prefetched_in_process(produce: Callable[[], Iterator[T]]) -> Iterator[Iterator[T]]:
    """Iterate what ``produce()`` yields, run in a forked child process, about one item ahead of the caller.

    For CPU-bound producing (parsing) next to a consumer that waits on the database: a thread shares the GIL
    with the consumer, a process has its own core. Items cross a pipe pickled, so they should be compact
    (bytes). The child is forked: it inherits the parent's state but must not use its sockets (the database
    connection), and leaves with ``os._exit``, so nothing of the parent's is closed or flushed by it. An
    exception in the child is raised in the caller as ``ProducerFailed`` at the item where it happened;
    leaving the block early, or the parent dying, ends the child (its next write to the pipe fails).
    """
    receiver, sender = multiprocessing.Pipe(duplex=False)
    # A bare fork, not multiprocessing.Process: Celery's prefork pool runs tasks in daemonic processes, and
    # multiprocessing (and billiard) refuse to start a child from one ("daemonic processes are not allowed to
    # have children"). The child here is ours alone: killed and reaped below, whatever happens.
    # What the parent had is frozen (a generation collections skip) in both processes until the child has ended:
    # a collection writes to every object it visits, and each page written in either process is copied, so the
    # pages the two share would otherwise soon be held twice.
    gc.freeze()
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        raise
    if pid == 0:  # the child: never returns into the caller's code
        try:
            _produce_into(produce, receiver, sender)
        finally:
            os._exit(0)
    exit_codes: list[int] = []

    def reap(*, kill: bool) -> int:
        """The child's exit code, once it has ended (killed first if ``kill``); it is waited for only once."""
        if not exit_codes:
            if kill:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                exit_codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            except ChildProcessError:  # already reaped by a SIGCHLD handler of the host process
                exit_codes.append(-1)
        return exit_codes[0]

    def consume() -> Iterator[T]:
        while True:
            try:
                tag, payload = receiver.recv()
            except EOFError:
                raise ProducerFailed("EOFError", f"the producer process ended ({reap(kill=False)})", "") from None
            if tag == "done":
                return
            if tag == "error":
                raise ProducerFailed(*payload)
            yield payload

    try:
        # The parent's copy of the writing end: closed, so the child's death reads as end of file here.
        sender.close()
        yield consume()
    finally:
        receiver.close()
        reap(kill=True)
        gc.unfreeze()


def _produce_into(
    produce: Callable[[], Iterator[T]],
    receiver: multiprocessing.connection.Connection,
    sender: multiprocessing.connection.Connection,
) -> None:
    # Celery's signal handlers belong to the worker; this process is ended with SIGKILL or a broken pipe.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    # Only the parent reads: with its end closed here, the parent's death breaks the pipe.
    receiver.close()
    try:
        for item in produce():
            sender.send(("item", item))
        sender.send(("done", None))
    except BrokenPipeError:
        return
    except BaseException as error:  # reported to the consumer, which raises it
        with suppress(BrokenPipeError):
            domain = error if isinstance(error, RegistryError) else None
            sender.send(
                (
                    "error",
                    (
                        type(error).__name__,
                        str(domain.message) if domain is not None else str(error),
                        traceback.format_exc(),
                        domain.code if domain is not None else "",
                        domain.field if domain is not None else None,
                    ),
                )
            )
