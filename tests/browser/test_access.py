"""Language, keyboard and phone: the portal in Korean and English, without a mouse, and on a small screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import PASSWORD, new_page, screenshot, sign_in

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_korean_from_the_browser_then_english_and_back_with_the_switcher(browser, live_server):
    page = new_page(browser, live_server, locale="ko-KR")
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_role("heading", name="저작물의 AI 학습 허용 여부 확인")).to_be_visible()
    screenshot(page, "home-ko")
    page.get_by_label("언어").select_option("en")
    page.get_by_role("button", name="변경").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Check a work's AI-training status")).to_be_visible()
    screenshot(page, "home-en")
    page.get_by_label("Identifier or URL").fill("978-89-364-3402-1")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_text("Not registered")).to_be_visible()
    # The choice sticks on the next page, and switching back keeps the page the person is on.
    page.get_by_label("Language").select_option("ko")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_text("미등록")).to_be_visible()
    assert "q=978-89-364-3402-1" in page.url
    page.context.close()


def test_sign_in_and_register_a_work_with_the_keyboard_only(page, live_server, holder_person):
    page.goto("/")
    # The skip link comes first and leads to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.goto("/accounts/login/")
    # The sign-in form puts the focus in its first field.
    expect(page.get_by_label("E-mail address")).to_be_focused()
    page.keyboard.type("writer@example.kr")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Hangang Press")).to_be_visible()

    page.goto("/dashboard/works/new/")
    page.get_by_label("Title").focus()
    page.keyboard.type("키보드로 쓴 시")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Kind")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Creators")).to_be_focused()
    page.locator("#id_identifiers-0-scheme").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#id_identifiers-0-value")).to_be_focused()
    page.keyboard.type("https://poems.example.kr/keyboard")
    page.keyboard.press("Enter")  # submits the form
    # The missing scheme is reported on its field; focus order and what was typed survive.
    expect(page.locator("#id_identifiers-0-scheme_error")).to_be_visible()
    expect(page.locator("#id_identifiers-0-value")).to_have_value("https://poems.example.kr/keyboard")
    expect(page.get_by_label("Title")).to_have_value("키보드로 쓴 시")
    page.locator("#id_identifiers-0-scheme").focus()
    page.keyboard.type("URL")  # a focused select picks the option whose name is typed
    expect(page.locator("#id_identifiers-0-scheme")).to_have_value("url")
    page.locator("#id_identifiers-0-value").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="키보드로 쓴 시")).to_be_visible()


def test_the_dashboard_and_works_fit_a_phone_screen(browser, live_server, holder_person):
    page = new_page(browser, live_server, viewport={"width": 375, "height": 740})
    sign_in(page, live_server, holder_person)
    for url in ["/", "/dashboard/", "/dashboard/works/", "/dashboard/works/new/", "/dashboard/refusals/new/"]:
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{url} scrolls sideways by {overflow}px"
    page.goto("/dashboard/")
    screenshot(page, "dashboard-phone")
    page.context.close()
