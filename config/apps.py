"""App configuration that lives in ``config``: Django's admin, with the registry's admin site (config/admin.py)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class RegistryAdminConfig(AdminConfig):
    default_site = "config.admin.RegistryAdminSite"
