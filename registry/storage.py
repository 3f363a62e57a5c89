"""Where claim evidence is stored: files nobody but the claimant and staff may read."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property


class EvidenceStorage(FileSystemStorage):
    """Files under ``MEDIA_ROOT/private`` (or ``location``), with no URL: they are only ever sent by the claim's
    permission-checked download view, never by a web server, so nothing can link to them."""

    @cached_property
    def base_location(self) -> str:
        # Follows MEDIA_ROOT as FileSystemStorage does (and its cache is cleared when MEDIA_ROOT changes).
        location = getattr(self, "_location", None)
        return str(self._value_or_setting(location, os.path.join(settings.MEDIA_ROOT, "private")))

    def url(self, name: str | None) -> str:
        raise NotImplementedError("Claim evidence has no URL; it is sent by the claim's download view.")
