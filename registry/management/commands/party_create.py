from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.errors import RegistryError
from registry.models import HolderType, PartyKind
from registry.services import party_create


class Command(BaseCommand):
    help = "Create a rights holder or AI lab, with its owner (created if needed, without a password)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=PartyKind.values)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--holder-type", choices=HolderType.values, default=HolderType.ORGANISATION)
        parser.add_argument("--isni", default="")
        parser.add_argument("--brn", default="", help="Korean business registration number")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["owner_email"].strip().lower()
        user_model = get_user_model()
        owner = user_model.objects.filter(email__iexact=email).first()
        if owner is None:
            owner = user_model.objects.create_user(username=email, email=email)
            owner.set_unusable_password()
            owner.save()
        try:
            party = party_create(
                actor=Actor.system(),
                kind=options["kind"],
                name=options["name"],
                owner=owner,
                holder_type=options["holder_type"],
                isni=options["isni"],
                business_registration_number=options["brn"],
            )
        except RegistryError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"Created {party.get_kind_display()} “{party.name}” (id {party.pk}), owner {email}.")
