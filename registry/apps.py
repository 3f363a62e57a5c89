from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Works registry")

    def ready(self) -> None:
        from registry import checks, receivers  # noqa: F401  (deployment checks; the kernel's audit events)
        from registry.api import schema_extensions  # noqa: F401  (registers the OpenAPI security schemes)
