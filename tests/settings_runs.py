"""Starting Django in subprocesses with a given environment, to test how settings react to it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (id, environment, variable the error must name, or None for "starts")
SettingsCase = tuple[str, dict[str, str], str | None]


def settings_runs_for(
    cases: Sequence[SettingsCase], *, base_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run ``django.setup()`` once per case, all at once (each start takes about a second)."""
    running = {}
    for case_id, environment, _variable in cases:
        env = {**base_env, "DATA_DIR": str(tmp_path_factory.mktemp(case_id)), **environment}
        running[case_id] = subprocess.Popen(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for case_id, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        results[case_id] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results
