"""Errors of snapshots, rendered by the registry's one API error handler."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.errors import InvalidState, NotFound, RegistryError


class SnapshotFailed(InvalidState):
    code = "snapshot_failed"
    default_message = _("This snapshot could not be built; the newest ready one is at /api/v1/snapshots/latest.")


class SnapshotFileMissing(NotFound):
    """Storage lost a file: a snapshot cannot be made again at its instant, so the reader takes a newer one."""

    code = "snapshot_file_missing"
    default_message = _("This snapshot's file is missing from storage; use the newest snapshot instead.")


class RangeNotSatisfiable(RegistryError):
    code = "range_not_satisfiable"
    status = 416
    default_message = _("The requested range starts beyond the end of the file.")
