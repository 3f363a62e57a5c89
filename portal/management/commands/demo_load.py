from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from optout.models import Refusal
from optout.services import refusal_file
from registry.models import ApiKey, ClaimStatus, Party, PartyKind, Work
from registry.services import (
    apikey_create,
    apikey_revoke,
    claim_verify,
    party_create,
    work_draft_build,
    works_register,
)

DEMO_KEY_NAME = "demo"
HOLDER = "한강출판사 Hangang Press"
LAB = "Seoul AI Lab"
WORKS: list[dict[str, Any]] = [
    {
        "title": "채식주의자 (demo)",
        "kind": "text",
        "identifiers": [{"scheme": "isbn", "value": "978-89-364-3402-1"}],
        "creators": ["Demo Author"],
        "language": "ko",
        "creation_year": 2007,
    },
    {
        "title": "Hangang Press newsroom: demo article",
        "kind": "text",
        "identifiers": [{"scheme": "url", "value": "https://press.example.kr/news/2026/demo-article"}],
        "language": "ko",
    },
    {
        "title": "Cover illustration (demo)",
        "kind": "image",
        "identifiers": [
            {"scheme": "sha256", "value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
        ],
    },
]


class Command(BaseCommand):
    help = "Load a small demo data set (a rights holder with works, an AI lab, a staff user) and print logins and keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="load even when DEBUG is off")
        parser.add_argument("--password", default="demo-pass-2026", help="password for the demo people")

    def _user(self, email: str, password: str, *, staff: bool = False) -> User:
        user_model = get_user_model()
        user, _created = user_model.objects.get_or_create(username=email, defaults={"email": email})
        user.is_staff = user.is_superuser = staff
        user.set_password(password)
        user.save()
        return user

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("demo_load creates known passwords; it runs only with DEBUG=1 (or --force).")
        system = Actor.system()
        password = options["password"]
        with transaction.atomic():
            staff = self._user("staff@demo.local", password, staff=True)
            holder_user = self._user("holder@demo.local", password)
            lab_user = self._user("lab@demo.local", password)
            holder = Party.objects.filter(name=HOLDER).first() or party_create(
                actor=system,
                kind=PartyKind.HOLDER,
                name=HOLDER,
                owner=holder_user,
                business_registration_number="1348672683",
            )
            lab = Party.objects.filter(name=LAB).first() or party_create(
                actor=system, kind=PartyKind.LAB, name=LAB, owner=lab_user
            )
            drafts = [work_draft_build(**work) for work in WORKS]
            works_register(actor=Actor(party=holder, is_system=True), holder=holder, drafts=drafts)
            staff_actor = Actor(user=staff)
            for claim in holder.claims.filter(status=ClaimStatus.PENDING):
                claim_verify(actor=staff_actor, claim=claim, reason="demo data")
            # The novel is refused for any AI training; the other demo works stay permitted.
            novel = Work.objects.get(identifiers__scheme="isbn", identifiers__value="9788936434021")
            if not Refusal.objects.filter(work=novel).exists():
                refusal_file(
                    actor=Actor(party=holder, is_system=True),
                    holder=holder,
                    scope="work",
                    purposes=["train-ai"],
                    work=novel,
                )
            # Secrets are stored hashed, so each run replaces the demo keys to be able to print them.
            for old in ApiKey.objects.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True):
                apikey_revoke(actor=system, api_key=old)
            _k, holder_key = apikey_create(
                actor=system, party=holder, scopes=["works:write", "lookup"], name=DEMO_KEY_NAME
            )
            _k, lab_key = apikey_create(actor=system, party=lab, scopes=["lookup", "usage:write"], name=DEMO_KEY_NAME)
            _k, staff_key = apikey_create(actor=system, staff_user=staff, scopes=["staff"], name=DEMO_KEY_NAME)
        self.stdout.write(f"Demo data loaded at {timezone.localtime():%Y-%m-%d %H:%M}:")
        self.stdout.write(f"  rights holder  {HOLDER}: login holder@demo.local / {password}  API key {holder_key}")
        self.stdout.write(f"  AI lab         {LAB}: login lab@demo.local / {password}  API key {lab_key}")
        self.stdout.write(
            f"  staff          login staff@demo.local / {password} (admin at /admin/)  API key {staff_key}"
        )
        self.stdout.write(
            "  refused work   isbn:9788936434021 (try: GET /api/v1/lookup?scheme=isbn&value=9788936434021)"
        )
