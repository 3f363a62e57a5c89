from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OptoutConfig(AppConfig):
    name = "optout"
    verbose_name = _("Refusals and lookups")

    def ready(self) -> None:
        from optout import receivers  # noqa: F401  (keeps the status projection current)
        from optout.feed import receivers as feed_receivers  # noqa: F401  (webhooks after changes commit)
        from optout.transparency import receivers as log_receivers  # noqa: F401  (status events become leaves)
