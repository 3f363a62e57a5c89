"""Deployment checks of the registry's own tools (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from registry.fingerprints import fpcalc_path


@register(Tags.compatibility, deploy=True)
def fpcalc_installed(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Without fpcalc, audio works' files get no Audio-Code (their jobs say so); the deployment should know."""
    if fpcalc_path() is not None:
        return []
    return [
        CheckWarning(
            "fpcalc (Chromaprint) is not installed: audio files get no ISCC Audio-Code, only SHA-256 and "
            "Data- and Instance-Codes.",
            hint="Install it on the workers: apt-get install libchromaprint-tools.",
            id="registry.W001",
        )
    ]
