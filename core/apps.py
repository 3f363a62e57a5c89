from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = _("Shared kernel")

    def ready(self) -> None:
        from core import lookups  # noqa: F401  (registers the any_of lookup)
