"""Who acts: the principal every service takes, and the permission checks shared by all apps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from core.errors import NotPermitted

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from registry.models import ApiKey, Party

# The API key scope that carries staff powers (``registry.models.ApiScope.STAFF`` is this value).
STAFF_SCOPE = "staff"


@dataclass(frozen=True)
class Actor:
    """The principal a service acts for: a person (portal session), a party's API key, or the system."""

    user: User | AnonymousUser | None = None
    party: Party | None = None
    api_key: ApiKey | None = None
    # The registry itself (tasks, operators' management commands): trusted like staff.
    is_system: bool = False
    # The member party a society or agent (``party``) acts for under a mandate (``"on_behalf_of"``); every write
    # is then checked against the mandate's scope and powers and recorded "by agent X for member Y".
    on_behalf_of: Party | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(is_system=True)

    @property
    def is_staff(self) -> bool:
        if self.is_system:
            return True
        if self.user is None or not getattr(self.user, "is_staff", False) or not self.user.is_active:
            return False
        # A staff user's key only carries staff powers when it was given the staff scope.
        return self.api_key is None or STAFF_SCOPE in self.api_key.scopes

    def has_scope(self, scope: str) -> bool:
        """Sessions carry every scope of their role; keys only the scopes they were given."""
        return self.api_key is None or scope in self.api_key.scopes

    @property
    def person(self) -> User | None:
        """The signed-in person acting, if any: API keys and the system act without one."""
        return self.user if isinstance(self.user, User) else None

    @property
    def user_id(self) -> int | None:
        if self.user is None or not self.user.is_authenticated:
            return None
        return int(self.user.pk)


def require_staff(actor: Actor) -> None:
    if not actor.is_staff:
        raise NotPermitted(_("Only registry staff may do this."))
