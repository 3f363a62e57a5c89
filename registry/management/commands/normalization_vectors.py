from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from registry.normalization_vectors import (
    URL_VECTORS_NAME,
    VECTORS_PATH,
    normalization_vectors,
    normalization_vectors_json,
    url_vectors_json,
)


class Command(BaseCommand):
    help = (
        "Write the identifier normalization conformance vectors (every scheme, valid and refused inputs, with the "
        "server's answers) and the URL rules' vectors (tracking parameters, prefix coverage) next to them, which the "
        "lab-side client's tests check."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default=VECTORS_PATH, help=f"file to write (default {VECTORS_PATH}); - for stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        text = normalization_vectors_json()
        if options["out"] == "-":
            self.stdout.write(text, ending="")
            return
        path = Path(options["out"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        # The URL rules' vectors go next to it (tracking parameters, prefix coverage).
        (path.parent / URL_VECTORS_NAME).write_text(url_vectors_json(), encoding="utf-8")
        self.stdout.write(f"wrote {len(normalization_vectors())} vectors to {path} and the URL rules' next to it")
