"""Journeys that need a real Celery worker: a bulk import with a progress bar, and a lab's manifest."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.tasks import QUEUE_LONG
from registry.models import Party, Work, WorkImport
from tests.browser.helpers import screenshot, sign_in
from tests.factories import PartyFactory, StaffUserFactory, UserFactory, WorkFactory
from tests.workers import CeleryWorkers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _person(email: str, kind: str, name: str):
    user = UserFactory(username=email)
    PartyFactory(kind=kind, name=name, owner=user)
    return user


def test_bulk_import_with_one_bad_row_shows_progress_until_it_finishes(page, live_server, tmp_path, settings):
    settings.WORK_IMPORT_CHUNK_ROWS = 10
    holder = _person("writer@example.kr", "holder", "Hangang Press")
    rows = ["title,kind,identifiers"]
    rows += [f"Poem {n},text,url:https://poems.example.kr/{n}" for n in range(1, 40)]
    rows.insert(5, "Broken,text,isbn:9788936434022")
    upload = tmp_path / "works.csv"
    upload.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    sign_in(page, live_server, holder)
    with CeleryWorkers(tmp_path, WORK_IMPORT_CHUNK_ROWS="10") as workers:
        workers.start(queue=QUEUE_LONG)
        page.goto("/dashboard/imports/new/")
        page.get_by_label("File").set_input_files(str(upload))
        # The first rows are shown before anything is uploaded.
        expect(page.locator("#csv-preview table")).to_contain_text("Poem 1")
        page.get_by_role("button", name="Upload and import").click()
        expect(page.get_by_role("heading", name="Import of works.csv")).to_be_visible()
        expect(page.locator("#import-progress")).to_be_visible()
        # The page follows the worker and reloads once the import is over.
        expect(page.locator("#import-status")).to_have_text("Processed", timeout=60_000)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#rows-registered")).to_have_text("39")
    expect(page.locator("#rows-failed")).to_have_text("1")
    # The worker stores the reason in the registry's default language (Korean), whatever the viewer's.
    expect(page.locator("#import-errors")).to_contain_text("identifiers[0].value")
    expect(page.locator("#import-errors")).to_contain_text("6")
    screenshot(page, "import-finished")
    assert WorkImport.objects.get().rows_registered == 39
    assert Work.objects.count() == 39


def test_a_lab_creates_a_key_looks_up_uploads_a_manifest_and_sees_its_outcomes(page, live_server, tmp_path):
    staff = StaffUserFactory(username="staff@r.kr")
    holder_user = _person("writer@example.kr", "holder", "Hangang Press")
    holder = Party.objects.get(name="Hangang Press")
    WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    tariff_set(
        actor=Actor(user=staff),
        kind="text",
        unit="token",
        rate_krw=Decimal("0.5"),
        effective_from=timezone.now() - timedelta(days=30),
    )
    lab = _person("ml@lab.example", "lab", "Seoul AI Lab")
    sign_in(page, live_server, lab)

    page.goto("/dashboard/keys/")
    page.get_by_label("Name").fill("pipeline")
    page.get_by_label("Look up works").check()
    page.get_by_label("Submit usage manifests").check()
    page.get_by_role("button", name="Create the key").click()
    expect(page.locator("#new-key")).to_contain_text("orr_")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)  # shown once

    page.goto("/dashboard/lookup/")
    page.get_by_label("Identifiers").fill("isbn:978-89-364-3402-1\nhttps://unknown.example.kr/page")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#lookup-results")).to_contain_text("permitted")
    expect(page.locator("#lookup-results")).to_contain_text("unregistered")
    expect(page.locator("#answer-json")).to_contain_text('"receipt"')

    used_at = (timezone.now() - timedelta(days=1)).isoformat()
    manifest = tmp_path / "run.csv"
    manifest.write_text(
        "scheme,value,units,unit,used_at\r\n"
        f"isbn,9788936434021,2000000,token,{used_at}\r\n"
        f"isbn,9788936434022,1,token,{used_at}\r\n"
    )
    with CeleryWorkers(tmp_path) as workers:
        workers.start(queue=QUEUE_LONG)
        page.goto("/dashboard/manifests/")
        page.get_by_label("Manifest id").fill("run-2026-11")
        page.get_by_label("Model", exact=True).fill("hangul-7b")
        page.get_by_label("Lines file").set_input_files(str(manifest))
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("heading", name="Manifest run-2026-11")).to_be_visible()
        expect(page.locator("#manifest-status")).to_have_text("Processed", timeout=60_000)
    expect(page.locator("#outcomes")).to_contain_text("matched")
    expect(page.locator("#outcomes")).to_contain_text("invalid")
    screenshot(page, "manifest-outcomes")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download outcomes (CSV)").click()
    assert download.value.suggested_filename.endswith("-outcomes.csv")

    # The holder sees the money accrued to them.
    page.context.clear_cookies()
    sign_in(page, live_server, holder_user)
    page.goto("/dashboard/earnings/")
    expect(page.locator(".figure").first).to_contain_text("₩1,000")
    screenshot(page, "earnings")
