"""What every Celery task of the registry shares: which errors are worth a retry."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# A lost database connection is worth retrying (Celery does, with backoff); anything else is a bug or bad
# data, recorded on the job.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
