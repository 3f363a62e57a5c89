from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Works registry")

    def ready(self) -> None:
        from registry import lookups  # noqa: F401  (registers the any_of lookup)
