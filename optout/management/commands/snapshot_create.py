from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from optout.models import SnapshotStatus
from optout.snapshots import services


class Command(BaseCommand):
    help = (
        "Build a snapshot of what is not permitted now, in this process (or --queue it for the long-queue worker); "
        "prints its id, instant, cursor and counts. Retention (SNAPSHOT_KEEP) applies after it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="store_true", help="hand it to the workers instead of building here")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["queue"]:
            snapshot = services.snapshot_schedule()
            self.stdout.write(f"snapshot {snapshot.snapshot_id} {snapshot.status}")
            return
        snapshot = services.snapshot_create_now(actor=Actor.system())
        if snapshot.status != SnapshotStatus.READY:
            raise CommandError(
                f"snapshot {snapshot.snapshot_id} failed: {snapshot.failure_code}: {snapshot.failure_message}"
            )
        manifest = snapshot.manifest or {}
        counts = manifest.get("counts", {})
        keys = ", ".join(f"{purpose} {count:,}" for purpose, count in counts.get("keys", {}).items())
        self.stdout.write(
            f"snapshot {snapshot.snapshot_id} ready: as of {manifest.get('as_of')}, cursor {snapshot.cursor}, "
            f"keys {keys}, {counts.get('scheduled', 0):,} scheduled, {snapshot.total_bytes:,} bytes"
        )
        self.stdout.write(snapshot.snapshot_id)
