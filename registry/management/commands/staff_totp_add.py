from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.errors import RegistryError
from registry.services import staff_totp_device_add, staff_user_ensure


class Command(BaseCommand):
    help = (
        "Give a staff user a TOTP device for the admin's second factor (STAFF_OTP_REQUIRED). Prints the otpauth:// "
        "URI to enter in an authenticator app on its last line; it is shown only now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--staff-user", required=True, help="the staff user's e-mail; created as staff if needed")
        parser.add_argument("--name", default="authenticator", help="a label for the device")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = staff_user_ensure(email=options["staff_user"])
            device = staff_totp_device_add(actor=Actor.system(), user=user, name=options["name"])
        except RegistryError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"TOTP device {device.name!r} for {user}; add it to an authenticator app (shown only now):")
        self.stdout.write(device.config_url)
