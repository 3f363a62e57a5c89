from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.errors import RegistryError
from registry.models import ApiScope, Party
from registry.services import apikey_create, staff_user_ensure


class Command(BaseCommand):
    help = "Create an API key for a party (--party) or a staff user (--staff-user). The key is the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--party", help="the party's name")
        target.add_argument("--staff-user", help="a staff user's e-mail; created as staff if needed")
        parser.add_argument("--scopes", required=True, help="comma-separated: " + ", ".join(ApiScope.values))
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            if options["party"]:
                party = Party.objects.filter(name=options["party"]).first()
                if party is None:
                    raise CommandError(f"No party named {options['party']!r}.")
                key, raw_key = apikey_create(actor=Actor.system(), party=party, scopes=scopes, name=options["name"])
                owner = party.name
            else:
                user = staff_user_ensure(email=options["staff_user"])
                key, raw_key = apikey_create(actor=Actor.system(), staff_user=user, scopes=scopes, name=options["name"])
                owner = str(user)
        except RegistryError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"API key {key.prefix} for {owner} with scopes {', '.join(key.scopes)}; shown only now:")
        self.stdout.write(raw_key)
