"""The commands the project ships for its processes, read from the Procfile and docker-compose.yml, for the
tests and benchmarks that start those processes (never a convenient variant of them).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _in_this_environment(argv: list[str]) -> list[str]:
    """``argv`` with its program taken from this interpreter's environment (the project's .venv)."""
    program, *arguments = argv
    return [str(Path(sys.executable).parent / program), *arguments]


def procfile_command(process: str) -> list[str]:
    """The Procfile's command for ``process`` (docker-compose's is the same, as tests/test_deployment.py checks)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return _in_this_environment(shlex.split(command))
    raise LookupError(f"the Procfile has no {process} process")


def procfile_worker(queue: str) -> str:
    """The name of the Procfile's Celery worker process that consumes ``queue`` (``core.tasks.QUEUE_LONG`` or
    ``QUEUE_SHORT``): one does, as tests/test_deployment.py checks.
    """
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[:1] == ["celery"] and "worker" in argv and queue in (option_value(argv, "--queues") or "").split(","):
            return name.strip()
    raise LookupError(f"no worker of the Procfile consumes the {queue} queue")


def option_value(argv: list[str], option: str) -> str | None:
    """The value of the long ``option`` (``--queues=long`` or ``--queues long``) in ``argv``, None without it."""
    for index, argument in enumerate(argv):
        if argument.startswith(f"{option}="):
            return argument.partition("=")[2]
        if argument == option and index + 1 < len(argv):
            return argv[index + 1]
    return None


def option_replaced(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with the long ``option`` set to ``value``, in place of the value it had, if any."""
    kept: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument == option:
            next(arguments, None)
        elif not argument.startswith(f"{option}="):
            kept.append(argument)
    return [*kept, f"{option}={value}"]


def compose_command(service: str, *, bind: str | None = None) -> list[str]:
    """docker-compose's command for ``service``; ``bind`` replaces the address of its ``--bind`` option (the
    container's 0.0.0.0:8000 becomes a free port on this machine's loopback).
    """
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"][service]["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if bind is not None:
        argv[argv.index("--bind") + 1] = bind
    return _in_this_environment(argv)
