"""Statements and payouts under mandates: statements go to the member, to the agent or both as the mandate says;
payouts go to the agent's verified payout profile under the power to receive payouts; an agent's consolidated
statement lists each member's lines and sums the members' statements exactly.

The rules (``compensation/settlement/mandates.py``): an agent receives a statement when its mandate was in force at
some instant of the period; the member is sent it unless the mandate in force at the period's end says "agent" only,
and always reads it; the payout follows the mandate in force at the period's end; a works-scoped mandate sends the
whole statement.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import translation

from compensation.ledger.checks import check_offenders, ledger_checks
from compensation.models import (
    CarryReason,
    ConsolidatedStatement,
    Settlement,
    Statement,
    StatementRecipient,
)
from core.actors import Actor
from core.models import Notification, NotificationKind
from core.notifications import notification_render
from registry.mandates import mandate_accept, mandate_end, mandate_invite
from registry.models import Mandate, MemberRole, Membership, Party
from tests.compensation.helpers import BOOK, CO_OWNED
from tests.factories import ApiKeyFactory, SocietyFactory, UserFactory, payout_profile
from tests.helpers import key_client, seoul, signed_in, streamed

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
EVERYTHING_TO_AGENT = ["receive_statements", "receive_payouts"]


def _owner(party: Party) -> Any:
    return Membership.objects.get(party=party, role=MemberRole.OWNER).user


def _as(party: Party) -> Actor:
    return Actor(user=_owner(party), party=party)


def _mandate(agent: Party, member: Party, *, powers: list[str], statements_to: str = "member", **terms: Any) -> Mandate:
    """A mandate the agent offers and the member accepts, now (the clock's now)."""
    invited = mandate_invite(
        actor=_as(agent), agent=agent, member=member, powers=powers, statements_to=statements_to, **terms
    )
    return mandate_accept(actor=_as(member), mandate=invited)


def _api(party: Party) -> Any:
    return key_client(ApiKeyFactory(party=party, scopes=["lookup"]).raw)


@pytest.fixture
def agent_profile(society: Party, staff: Any) -> Any:
    return payout_profile(society, verified_by=staff, account_number="9999-00-1234567")


@pytest.fixture
def september(clock: Any, world: Any, report: Any, settle: Any, settings: Any) -> Any:
    """``september()`` reports September's uses (sub-won amounts for both members) and settles the month."""
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 1_000

    def run() -> Settlement:
        clock(seoul(2026, 9, 20, 12))
        # Hangang Press: 2,500.0005 KRW for the book and 60% of 5,000.0005 for the co-owned one; Other Records 40%.
        report((BOOK, "5000001"), (CO_OWNED, "10000001"))
        clock(seoul(2026, 10, 3, 9))
        body = settle("2026-09-01", "2026-09-30")
        assert body["status"] == "settled"
        return Settlement.objects.get(pk=body["id"])

    return run


def _statement(settlement: Settlement, holder: Party) -> Statement:
    return Statement.objects.get(settlement=settlement, holder=holder)


def _recipients(statement: Statement) -> list[tuple[int, str]]:
    return sorted(StatementRecipient.objects.filter(statement=statement).values_list("party_id", "role"))


def _told(party: Party, kind: str) -> list[dict[str, Any]]:
    return [
        n.context for n in Notification.objects.filter(user=_owner(party), kind=kind, party_id=party.pk).order_by("pk")
    ]


def _ledger_ok() -> None:
    out = StringIO()
    with translation.override("en"):
        call_command("ledger_check", stdout=out)
    assert "Ledger OK." in out.getvalue(), out.getvalue()


def _export_rows(staff_api: Any, settlement: Settlement) -> list[dict[str, str]]:
    response = staff_api.get(f"/api/v1/settlements/{settlement.pk}/payout-export")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(streamed(response).decode("utf-8-sig"))))


# --- Statements: member, agent, both -------------------------------------------------------------------------


def test_agent_only_statements_go_to_the_agent_and_the_member_still_reads_its_own(
    clock, september, holder, society, agent_profile
):
    mandate = _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(society.pk, "agent")]
    # The agent reads it through the API, the member too: its own account is never hidden from it.
    agent_ids = [s["id"] for s in _api(society).get("/api/v1/statements").json()["results"]]
    assert agent_ids == [statement.pk]
    member_body = _api(holder).get(f"/api/v1/statements/{statement.pk}").json()
    assert member_body["sent_to"] == [
        {"party": society.pk, "party_name": society.name, "role": "agent", "mandate": mandate.pk}
    ]
    assert member_body["paid_to"] == society.pk
    # Only the agent is told, of its consolidated statement: the member's statement was sent to it.
    assert _told(holder, NotificationKind.STATEMENT_READY) == []
    assert _told(society, NotificationKind.STATEMENT_READY) == []
    (told,) = _told(society, NotificationKind.CONSOLIDATED_STATEMENT_READY)
    consolidated = ConsolidatedStatement.objects.get(settlement=settlement, agent=society)
    assert (told["consolidated"], told["members"], told["paid_to_agent_micro"]) == (
        consolidated.pk,
        1,
        consolidated.paid_to_agent_micro,
    )
    assert consolidated.paid_to_agent_micro == statement.payout_micro > 0
    subject, body = notification_render(kind=NotificationKind.CONSOLIDATED_STATEMENT_READY, context=told, language="en")
    assert subject.startswith("Your consolidated statement for ")
    assert "each of the 1 member(s)" in body
    assert "; paid out: ₩" in body
    assert ", of which ₩" in body
    assert body.endswith(" to you.")
    subject_ko, _body_ko = notification_render(
        kind=NotificationKind.CONSOLIDATED_STATEMENT_READY, context=told, language="ko"
    )
    assert "통합 정산서" in subject_ko


def test_both_get_the_statement_and_the_member_is_paid_without_the_payout_power(
    september, holder, society, agent_profile
):
    mandate = _mandate(society, holder, powers=["receive_statements"], statements_to="both", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == sorted([(holder.pk, "member"), (society.pk, "agent")])
    assert statement.payee_id == holder.pk
    assert statement.payout_mandate_id is None
    assert statement.payout_micro > 0
    assert len(_told(holder, NotificationKind.STATEMENT_READY)) == 1
    assert len(_told(society, NotificationKind.CONSOLIDATED_STATEMENT_READY)) == 1
    assert [c["payout_micro"] for c in _told(holder, NotificationKind.PAYOUT_MADE)] == [statement.payout_micro]
    assert _told(society, NotificationKind.PAYOUT_MADE) == []
    assert StatementRecipient.objects.get(statement=statement, party=society).mandate_id == mandate.pk
    _ledger_ok()


def test_statements_to_the_member_keep_them_from_the_agent_even_when_it_is_paid(
    september, holder, society, agent_profile
):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="member", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(holder.pk, "member")]
    assert statement.payee_id == society.pk
    assert _api(society).get(f"/api/v1/statements/{statement.pk}").status_code == 404
    assert _api(society).get("/api/v1/statements").json()["results"] == []
    assert not ConsolidatedStatement.objects.filter(agent=society).exists()


def test_another_agent_and_a_lab_never_read_a_members_statement(september, holder, society, lab, agent_profile):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="both", scope="catalogue")
    rival = SocietyFactory(name="Rival Agency", owner=UserFactory(username="rival@agency.example"))

    settlement = september()

    statement = _statement(settlement, holder)
    for outsider in (rival, lab):
        assert _api(outsider).get(f"/api/v1/statements/{statement.pk}").status_code == 404
        assert _api(outsider).get(f"/api/v1/statements/{statement.pk}/lines").status_code == 404
    consolidated = ConsolidatedStatement.objects.get(agent=society)
    assert _api(rival).get(f"/api/v1/consolidated-statements/{consolidated.pk}").status_code == 404
    assert _api(holder).get(f"/api/v1/consolidated-statements/{consolidated.pk}").status_code == 404


# --- Payouts ------------------------------------------------------------------------------------------------


def test_the_payout_goes_to_the_agents_verified_profile_and_the_transfer_file_names_both(
    september, holder, other_holder, society, agent_profile, staff_api
):
    mandate = _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="both", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert statement.payee_id == society.pk
    assert statement.payout_mandate_id == mandate.pk
    # 2,500.0005 + 3,000.0003 KRW (60% of the co-owned book, largest remainder): 5,500 whole won paid.
    assert statement.payout_micro == 5_500 * MICRO
    entry = statement.payout_entry
    assert entry is not None
    assert entry.source["holder"] == holder.pk
    assert entry.source["payee"] == society.pk
    assert entry.source["mandate"] == mandate.pk
    rows = {int(row["holder"]): row for row in _export_rows(staff_api, settlement)}
    assert rows[holder.pk]["payee_name"] == f"{society.name} (legal)"
    assert rows[holder.pk]["account_number"] == "9999001234567"
    assert rows[holder.pk]["paid_to"] == str(society.pk)
    assert rows[holder.pk]["holder_name"] == holder.name
    assert rows[holder.pk]["mandate"] == str(mandate.pk)
    assert holder.name in rows[holder.pk]["memo"]
    assert rows[holder.pk]["amount_krw"] == "5500"
    # A member without a mandate is paid as before.
    assert rows[other_holder.pk]["paid_to"] == str(other_holder.pk)
    assert rows[other_holder.pk]["payee_name"] == f"{other_holder.name} (legal)"
    assert rows[other_holder.pk]["mandate"] == ""
    # The agent is told of the payout it received; the member reads it on its statement.
    assert [c["payout_micro"] for c in _told(society, NotificationKind.PAYOUT_MADE)] == [5_500 * MICRO]
    assert _told(holder, NotificationKind.PAYOUT_MADE) == []
    _ledger_ok()


def test_without_a_verified_agent_profile_the_members_money_is_carried_forward(september, holder, society):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="both", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert statement.payee_id == society.pk
    assert statement.payout_micro == 0
    assert statement.carry_reason == CarryReason.NO_VERIFIED_PROFILE
    assert statement.carried_forward_micro == statement.due_micro
    assert statement.payout_entry_id is None
    _ledger_ok()


def test_withholding_is_the_members_own_tax_status_when_paid_through_its_agent(
    september, holder, society, agent_profile, staff
):
    # The member is an individual (3.3% from migration 0014); the agent a corporation.
    payout_profile(holder, verified_by=staff, tax_status="individual")
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert statement.tax_status == "individual"
    assert statement.withholding_bp == 330
    assert statement.withheld_micro == 5_500 * 330 // 10_000 * MICRO
    assert statement.payout_micro + statement.withheld_micro == 5_500 * MICRO
    _ledger_ok()


# --- When the mandate was in force ---------------------------------------------------------------------------


def test_a_mandate_ended_before_the_period_sends_nothing_to_the_agent(clock, september, holder, society, agent_profile):
    mandate = _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    clock(seoul(2026, 8, 20, 10))
    mandate_end(actor=_as(holder), mandate=mandate, reason="moving to another society")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(holder.pk, "member")]
    assert statement.payee_id == holder.pk
    assert statement.payout_mandate_id is None
    assert not ConsolidatedStatement.objects.exists()


def test_a_mandate_started_within_the_period_sends_that_periods_statement_and_payout(
    clock, september, holder, society, agent_profile
):
    clock(seoul(2026, 9, 15, 10))
    mandate = _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(society.pk, "agent")]
    assert statement.payee_id == society.pk
    assert statement.payout_mandate_id == mandate.pk


def test_a_mandate_started_after_the_period_waits_for_the_next_one(clock, september, holder, society, agent_profile):
    # Accepted on 1 October, before September is settled on the 3rd: September is still the member's alone.
    clock(seoul(2026, 10, 1, 10))
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(holder.pk, "member")]
    assert statement.payee_id == holder.pk


def test_a_mandate_ended_before_its_start_was_never_in_force(clock, september, holder, society, agent_profile):
    mandate = _mandate(
        society,
        holder,
        powers=EVERYTHING_TO_AGENT,
        statements_to="agent",
        scope="catalogue",
        starts_at=seoul(2026, 9, 20),
    )
    clock(seoul(2026, 9, 10, 10))
    mandate_end(actor=_as(holder), mandate=mandate, reason="changed my mind")

    settlement = september()

    statement = _statement(settlement, holder)
    assert _recipients(statement) == [(holder.pk, "member")]
    assert statement.payee_id == holder.pk


def test_a_mandate_ended_within_the_period_sends_the_statement_to_both_and_pays_the_member(
    clock, september, holder, society, agent_profile
):
    mandate = _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    clock(seoul(2026, 9, 10, 10))
    mandate_end(actor=_as(society), mandate=mandate)

    settlement = september()

    statement = _statement(settlement, holder)
    # The agent acted for the member in part of the period; at its end nobody did, so the member is sent it too.
    assert _recipients(statement) == sorted([(holder.pk, "member"), (society.pk, "agent")])
    assert statement.payee_id == holder.pk


def test_a_mandate_with_an_agreed_end_after_the_period_still_pays_the_agent(
    clock, september, holder, society, agent_profile
):
    _mandate(
        society,
        holder,
        powers=EVERYTHING_TO_AGENT,
        statements_to="agent",
        scope="catalogue",
        ends_at=seoul(2026, 10, 1) + timedelta(microseconds=1),
    )

    settlement = september()

    assert _statement(settlement, holder).payee_id == society.pk


def test_a_works_scoped_mandate_sends_the_whole_statement(clock, september, holder, society, agent_profile, world):
    # Only the book is on the mandate; the co-owned book's line is on the statement the agent receives all the same.
    _mandate(
        society,
        holder,
        powers=EVERYTHING_TO_AGENT,
        statements_to="agent",
        scope="works",
        works=[world["book"]],
    )

    settlement = september()

    statement = _statement(settlement, holder)
    lines = _api(society).get(f"/api/v1/statements/{statement.pk}/lines").json()["results"]
    assert {line["work"] for line in lines} == {world["book"].pk, world["co_owned"].pk}
    assert sum(line["amount_micro"] for line in lines) == statement.due_micro - statement.opening_micro
    assert statement.payee_id == society.pk


# --- Consolidated statements ---------------------------------------------------------------------------------


def test_the_consolidated_statement_sums_its_members_statements_to_the_micro_won(
    september, holder, other_holder, society, agent_profile, staff
):
    payout_profile(other_holder, verified_by=staff, tax_status="individual", account_number="3333-01-2345678")
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    _mandate(society, other_holder, powers=["receive_statements"], statements_to="both", scope="catalogue")

    settlement = september()

    members = [_statement(settlement, holder), _statement(settlement, other_holder)]
    consolidated = ConsolidatedStatement.objects.get(settlement=settlement, agent=society)
    assert consolidated.members == 2
    for field in ("opening_micro", "due_micro", "payout_micro", "withheld_micro", "carried_forward_micro"):
        assert getattr(consolidated, field) == sum(getattr(s, field) for s in members), field
    assert consolidated.earned_micro == sum(s.due_micro - s.opening_micro for s in members)
    # Sub-won amounts are kept: 5,500.0008 + 2,000.0002 KRW earned.
    assert consolidated.due_micro == 7_500_001_000
    assert consolidated.withheld_micro == 2_000 * 330 // 10_000 * MICRO
    # Only the first member's payout was paid to the agent.
    assert consolidated.paid_to_agent_micro == members[0].payout_micro

    api = _api(society)
    listed = api.get("/api/v1/consolidated-statements").json()["results"]
    assert [c["id"] for c in listed] == [consolidated.pk]
    detail = api.get(f"/api/v1/consolidated-statements/{consolidated.pk}").json()
    assert detail["due_micro"] == consolidated.due_micro
    assert detail["payout_micro"] == sum(s.payout_micro for s in members)
    sections = api.get(f"/api/v1/consolidated-statements/{consolidated.pk}/members").json()["results"]
    assert [s["holder_name"] for s in sections] == sorted([holder.name, other_holder.name])
    assert sum(s["subtotal_micro"] for s in sections) == detail["earned_micro"]
    assert sum(s["net_micro"] for s in sections) == detail["payout_micro"]
    assert sum(s["withheld_micro"] for s in sections) == detail["withheld_micro"]
    assert {s["holder"]: s["paid_to"] for s in sections} == {holder.pk: society.pk, other_holder.pk: other_holder.pk}
    # Each member's lines are the agent's to read.
    for section in sections:
        lines = api.get(section["lines"]).json()["results"]
        assert sum(line["amount_micro"] for line in lines) == section["subtotal_micro"]
    _ledger_ok()


def test_the_consolidated_csv_has_a_section_per_member_and_the_grand_total(
    september, holder, other_holder, society, agent_profile
):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    _mandate(society, other_holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")

    settlement = september()

    consolidated = ConsolidatedStatement.objects.get(settlement=settlement, agent=society)
    response = _api(society).get(
        f"/api/v1/consolidated-statements/{consolidated.pk}/export?format=csv", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    headings = [row[0] for row in rows if row]
    assert holder.name in headings
    assert other_holder.name in headings
    subtotals = [row for row in rows if row and row[0] == "Subtotal"]
    assert len(subtotals) == 2
    grand = rows[[row[0] if row else "" for row in rows].index("Grand total") :]
    due = next(row[1] for row in grand if row and row[0] == "Due")
    assert due == "7500.001"
    assert sum(_statement(settlement, p).due_micro for p in (holder, other_holder)) == 7_500_001_000
    pdf = _api(society).get(f"/api/v1/consolidated-statements/{consolidated.pk}/export?format=pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")


# --- Portal --------------------------------------------------------------------------------------------------


def test_the_agent_reads_its_members_statements_and_the_consolidated_statement_in_the_portal(
    september, holder, other_holder, society, agent_profile
):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    _mandate(society, other_holder, powers=["receive_statements"], statements_to="both", scope="catalogue")

    settlement = september()

    client = signed_in(_owner(society))
    listing = client.get("/dashboard/statements/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert holder.name in page
    assert other_holder.name in page
    statement = _statement(settlement, holder)
    detail = client.get(f"/dashboard/statements/{statement.pk}/")
    assert detail.status_code == 200
    assert society.name in detail.content.decode()
    consolidated = ConsolidatedStatement.objects.get(agent=society)
    assert client.get("/dashboard/consolidated-statements/").status_code == 200
    response = client.get(f"/dashboard/consolidated-statements/{consolidated.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert text.count('class="member-section"') == 2
    grand_total = text[text.index('id="grand-total"') :]
    assert "7,500" in grand_total[: grand_total.index("</dl>")]
    download = client.get(f"/dashboard/consolidated/{consolidated.pk}/download?format=csv")
    assert download.status_code == 200
    # The member still reads its own statement (agent only), but not the agent's consolidated statement.
    member = signed_in(_owner(holder))
    assert member.get(f"/dashboard/statements/{statement.pk}/").status_code == 200
    assert member.get(f"/dashboard/consolidated-statements/{consolidated.pk}/").status_code == 404
    assert member.get(f"/dashboard/consolidated/{consolidated.pk}/download?format=csv").status_code == 404


def test_an_agent_sets_its_payout_details_in_the_api_and_sees_them_in_the_portal(society, lab):
    details = {
        "payee_name": "Korea Music Society",
        "bank_name": "Woori Bank",
        "account_number": "1002-123-456789",
        "tax_id_kind": "brn",
        "tax_id": "1208147521",
        "tax_status": "corporation",
    }
    api = key_client(ApiKeyFactory(party=society, scopes=["payouts:write"]).raw)
    response = api.put("/api/v1/payout-profile", details, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "unverified"
    page = signed_in(_owner(society)).get("/dashboard/payout-profile/")
    assert page.status_code == 200
    assert "*****6789" in page.content.decode()
    # A lab is never paid out.
    lab_api = key_client(ApiKeyFactory(party=lab, scopes=["payouts:write"]).raw)
    refused = lab_api.put("/api/v1/payout-profile", details, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "not_a_holder"


# --- The database keeps what was sent -------------------------------------------------------------------------


def test_recipients_and_consolidated_statements_never_change(on_postgres, september, holder, society, agent_profile):
    if not on_postgres:
        pytest.skip("the guards are PostgreSQL triggers")
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    september()
    for sql in (
        "UPDATE compensation_statementrecipient SET role = 'member'",
        "DELETE FROM compensation_statementrecipient",
        "UPDATE compensation_consolidatedstatement SET members = 5",
        "DELETE FROM compensation_consolidatedstatement",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)


def test_ledger_check_names_a_consolidated_statement_that_does_not_add_up(
    on_postgres, september, holder, society, agent_profile
):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="agent", scope="catalogue")
    september()
    consolidated = ConsolidatedStatement.objects.get(agent=society)
    with connection.cursor() as cursor:
        if on_postgres:
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE compensation_consolidatedstatement SET payout_micro = payout_micro + 1, "
            "due_micro = due_micro + 1, earned_micro = earned_micro + 1 WHERE id = %s",
            [consolidated.pk],
        )
        if on_postgres:
            cursor.execute("SET LOCAL session_replication_role = origin")
    broken = {check.name: check_offenders(check, limit=5) for check in ledger_checks()}
    assert broken["consolidated_statements_add_up"] == (1, [consolidated.pk])
    assert broken["payouts_to_payees"] == (0, [])


def test_staff_see_where_statements_went_in_the_admin(september, holder, society, agent_profile, staff, staff_client):
    _mandate(society, holder, powers=EVERYTHING_TO_AGENT, statements_to="both", scope="catalogue")
    settlement = september()
    # The clock moved on: the admin's session is signed in again at the settlement's time.
    staff_client.force_login(staff)
    statement = _statement(settlement, holder)
    consolidated = ConsolidatedStatement.objects.get(agent=society)

    page = staff_client.get(f"/admin/compensation/statement/{statement.pk}/change/")
    assert page.status_code == 200
    assert society.name in page.content.decode()
    listing = staff_client.get("/admin/compensation/consolidatedstatement/")
    assert listing.status_code == 200
    assert f"/admin/compensation/consolidatedstatement/{consolidated.pk}/change/" in listing.content.decode()
