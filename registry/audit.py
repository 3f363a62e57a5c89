"""Who did something, and the append-only record of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import models

from registry.models import ApiKey, ApiScope, AuditEvent, Party

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser


@dataclass(frozen=True)
class Actor:
    """The principal a service acts for: a person (portal session), a party's API key, or the system."""

    user: User | AnonymousUser | None = None
    party: Party | None = None
    api_key: ApiKey | None = None
    # The registry itself (tasks, operators' management commands): trusted like staff.
    is_system: bool = False

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
        return self.api_key is None or ApiScope.STAFF in self.api_key.scopes

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


def audit_record(
    *, code: str, actor: Actor, target: models.Model | None = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """Write one audit event; call it inside the transaction that makes the change."""
    return AuditEvent.objects.create(
        code=code,
        actor_user_id=actor.user_id,
        actor_party=actor.party,
        actor_api_key=actor.api_key,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        data=data or {},
    )
