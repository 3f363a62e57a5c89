"""A rights holder's journeys in a real browser: sign up, register a work, refuse and withdraw, verify a domain."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from registry.models import Identifier, Party, Work
from tests.browser.helpers import screenshot, sign_in
from tests.factories import StaffUserFactory, WorkFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_sign_up_verify_the_address_and_create_a_rights_holder(page, live_server):
    page.goto("/accounts/signup/")
    page.get_by_label("E-mail address").fill("new@example.kr")
    page.get_by_label("Password", exact=True).fill("a-long-Passphrase-42")
    page.get_by_label("Password again").fill("a-long-Passphrase-42")
    screenshot(page, "signup")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+", str(mail.outbox[0].body))
    assert link, mail.outbox[0].body
    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Create a rights holder or AI lab")).to_be_visible()
    page.get_by_label("Rights holder").check()
    page.get_by_label("Name", exact=True).fill("New Press")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="New Press")).to_be_visible()
    assert Party.objects.get(name="New Press").memberships.get().user.email == "new@example.kr"


def test_register_a_work_with_identifiers_checked_as_you_type_and_a_file_fingerprint(
    page, live_server, holder_person, tmp_path
):
    sign_in(page, live_server, holder_person)
    page.goto("/dashboard/works/new/")
    page.get_by_label("Title").fill("바람의 노래")
    page.get_by_label("Kind").select_option("text")
    page.locator("#id_identifiers-0-scheme").select_option("isbn")
    page.locator("#id_identifiers-0-value").fill("978-89-364-3402-2")
    expect(page.locator("#id_identifiers-0-value_check")).to_contain_text("check digit")
    page.locator("#id_identifiers-0-value").fill("978-89-364-3402-1")
    expect(page.locator("#id_identifiers-0-value_check")).to_contain_text("isbn:9788936434021")
    # The file is hashed in the browser and never sent: only its SHA-256 is.
    work_file = tmp_path / "song.mp3"
    work_file.write_bytes(b"ID3 not really an mp3" * 1000)
    page.locator("#fingerprint-file").set_input_files(str(work_file))
    digest = hashlib.sha256(work_file.read_bytes()).hexdigest()
    expect(page.locator("#fingerprint-result")).to_contain_text(digest)
    screenshot(page, "work-register")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.get_by_role("heading", name="바람의 노래")).to_be_visible()
    work = Work.objects.get()
    assert set(Identifier.objects.filter(work=work).values_list("scheme", "value")) == {
        ("isbn", "9788936434021"),
        ("sha256", digest),
    }
    screenshot(page, "work-page")


def test_file_a_refusal_for_selected_works_and_withdraw_it(page, live_server, holder_person, transactional_db):
    holder = Party.objects.get(name="Hangang Press")
    staff = StaffUserFactory(username="staff@r.kr")
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    sign_in(page, live_server, holder_person)
    page.goto("/dashboard/works/")
    page.get_by_label(f"Select {work.title}").check()
    page.get_by_role("button", name="Refuse AI training of the selected works").click()
    expect(page.get_by_role("heading", name="Refuse AI training")).to_be_visible()
    page.get_by_label("Any AI model training").check()
    page.get_by_role("button", name="File the refusal").click()
    expect(page.get_by_text("1 refusal is filed.")).to_be_visible()
    expect(page.locator(".badge.in_force")).to_have_text("In force")
    screenshot(page, "refusals")
    # The public page now says refused.
    page.goto(f"/works/{work.pk}")
    expect(page.get_by_text("Refused", exact=True)).to_be_visible()
    page.goto("/dashboard/refusals/")
    page.get_by_role("link", name=re.compile("Withdraw")).click()
    expect(page.get_by_role("heading", name="What changes")).to_be_visible()
    expect(page.get_by_text("AI labs may use this work for training")).to_be_visible()
    page.get_by_role("button", name="Withdraw the refusal").click()
    expect(page.locator("#id_confirm_error")).to_be_visible()  # confirmation is required, nothing changed
    page.get_by_label("I understand what changes.").check()
    page.get_by_role("button", name="Withdraw the refusal").click()
    expect(page.get_by_text("The refusal is withdrawn.")).to_be_visible()
    expect(page.locator(".badge.withdrawn")).to_have_text("Withdrawn")


def test_verify_a_domain_by_its_well_known_file(page, live_server, holder_person, web_root):
    origin, root = web_root
    sign_in(page, live_server, holder_person)
    page.goto("/dashboard/domains/")
    page.get_by_label("Web address (origin)").fill(origin)
    page.get_by_label("File under /.well-known/").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text(f"{origin}/.well-known/optout-registry.txt")).to_be_visible()
    token = page.locator("#domain-token").inner_text()
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("Not verified yet")).to_be_visible()
    (root / ".well-known" / "optout-registry.txt").write_text(token + "\n")
    page.get_by_role("button", name="Check now").click()
    expect(page.locator("#domain-status")).to_have_text("Verified")
    expect(page.get_by_role("link", name="tdmrep.json")).to_be_visible()
    screenshot(page, "domain-verified")
