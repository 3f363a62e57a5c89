"""Loaded before pytest-django reads the settings (``-p tests.env``): tests may run without secrets."""

import os

os.environ.setdefault("REGISTRY_TESTING", "1")
