"""A society's journey in a real browser: it invites a member, the member accepts, the society refuses the
member's whole catalogue, and the member sees the refusal as filed by the society for it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from optout.models import Refusal
from registry.models import Mandate, MandateStatus
from tests.browser.helpers import new_page, screenshot, sign_in
from tests.factories import SocietyFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_society_invites_member_accepts_and_society_refuses_the_catalogue(
    browser: Any, page: Any, live_server: Any, holder_person: Any
) -> None:
    desk = UserFactory(username="licensing@komca.example")
    society = SocietyFactory(name="Korea Music Society", owner=desk)

    sign_in(page, live_server, desk)
    page.goto("/dashboard/")
    expect(page.get_by_role("heading", name="Mandates")).to_be_visible()
    page.get_by_label("The member's e-mail address").fill("writer@example.kr")
    page.get_by_label("The member's whole catalogue").check()
    page.get_by_label("File and withdraw refusals").check()
    screenshot(page, "mandate-invite")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.locator("#mandates-held")).to_contain_text("Hangang Press")
    expect(page.locator("#mandates-held")).to_contain_text("Invited")
    mandate = Mandate.objects.get(agent=society)

    member_page = new_page(browser, live_server)
    try:
        sign_in(member_page, live_server, holder_person)
        member_page.goto("/dashboard/mandates/")
        expect(member_page.locator("#mandates-given")).to_contain_text("Korea Music Society")
        screenshot(member_page, "mandate-accept")
        member_page.get_by_role("button", name="Accept the mandate").click()
        expect(member_page.locator("#mandates-given")).to_contain_text("Active")
        mandate.refresh_from_db()
        assert mandate.status == MandateStatus.ACTIVE

        page.goto("/dashboard/mandates/")
        page.get_by_label("Any AI model training").check()
        page.get_by_role("button", name="File the refusal for this member").click()
        expect(page.get_by_text("is refused, filed by you for them")).to_be_visible()
        refusal = Refusal.objects.get()
        assert (refusal.holder.name, refusal.agent, refusal.scope) == ("Hangang Press", society, "catalogue")

        member_page.goto("/dashboard/refusals/")
        expect(member_page.get_by_text("Filed by Korea Music Society for Hangang Press")).to_be_visible()
        screenshot(member_page, "refusal-filed-by-society")
    finally:
        member_page.context.close()
