from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CompensationConfig(AppConfig):
    name = "compensation"
    verbose_name = _("Compensation")

    def ready(self) -> None:
        from compensation import receivers  # noqa: F401  (connects the signal receivers)
