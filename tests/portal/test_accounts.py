"""Sign-up with e-mail verification, sign-in limits, password reset, parties, members and invitations."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from registry.models import AuditEvent, MemberRole, Membership, Party
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Passphrase-42"


def _link(message: mail.EmailMessage) -> str:
    match = re.search(r"https?://[^/\s]+(/\S+)", str(message.body))
    assert match, message.body
    return match.group(1)


def test_sign_up_sends_a_link_that_verifies_the_address_and_signs_in(django_capture_on_commit_callbacks):
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/signup/", {"email": "New@Example.kr", "password1": PASSWORD, "password2": PASSWORD}
        )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/signup/done/"
    user = get_user_model().objects.get(email="New@example.kr")
    assert not user.is_active
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["New@example.kr"]
    link = _link(mail.outbox[0])
    # Not active yet: signing in is refused with the reason.
    response = client.post("/accounts/login/", {"username": "new@example.kr", "password": PASSWORD})
    assert response.status_code == 200
    assert "Confirm your e-mail address first" in response.content.decode()

    response = client.get(link)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/parties/new/"
    user.refresh_from_db()
    assert user.is_active
    assert client.get("/dashboard/parties/new/").status_code == 200
    assert AuditEvent.objects.filter(code="portal.account.verified").count() == 1
    # The link works once.
    assert Client().get(link).status_code == 400


def test_sign_up_with_a_taken_address_creates_nothing_and_tells_its_owner(owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            "/accounts/signup/", {"email": owner.email, "password1": PASSWORD, "password2": PASSWORD}
        )
    assert response.status_code == 302  # the same answer as a new address: nothing is revealed
    assert get_user_model().objects.filter(email__iexact=owner.email).count() == 1
    assert len(mail.outbox) == 1
    assert "already has an account" in mail.outbox[0].body


def test_sign_up_keeps_what_was_typed_when_the_password_is_weak():
    response = Client().post("/accounts/signup/", {"email": "a@example.kr", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'value="a@example.kr"' in body
    assert 'aria-invalid="true"' in body
    assert 'id="id_password1_error"' in body
    assert not get_user_model().objects.filter(email="a@example.kr").exists()


def test_sign_in_is_refused_after_too_many_failures_even_with_the_right_password(owner, settings):
    settings.LOGIN_MAX_FAILURES = 3
    client = Client()
    for _attempt in range(3):
        response = client.post("/accounts/login/", {"username": owner.email, "password": "wrong"})
        assert "The e-mail address or the password is wrong." in response.content.decode()
    response = client.post("/accounts/login/", {"username": owner.email, "password": "correct-horse-battery"})
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_is_limited_per_address_across_accounts(owner, outsider, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    client = Client()
    client.post("/accounts/login/", {"username": "x@example.kr", "password": "wrong"})
    client.post("/accounts/login/", {"username": "y@example.kr", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": owner.email, "password": "correct-horse-battery"})
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_sign_in_and_out(owner):
    client = Client()
    response = client.post("/accounts/login/", {"username": owner.email, "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 302


def test_password_reset_mails_a_working_link(owner):
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = _link(mail.outbox[0])
    response = client.get(link, follow=True)
    assert response.status_code == 200
    form_url = response.redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_creating_a_party_makes_the_person_its_owner(outsider):
    client = signed_in(outsider)
    assert client.get("/dashboard/")["Location"] == "/dashboard/parties/new/"
    response = client.post(
        "/dashboard/parties/new/", {"kind": "holder", "name": "Daehan Books", "holder_type": "organisation"}
    )
    assert response.status_code == 302
    party = Party.objects.get(name="Daehan Books")
    assert Membership.objects.get(party=party, user=outsider).role == MemberRole.OWNER
    assert client.get("/dashboard/").status_code == 200


def test_a_party_error_is_shown_on_its_field(outsider, holder):
    client = signed_in(outsider)
    response = client.post(
        "/dashboard/parties/new/",
        {"kind": "holder", "name": holder.name, "holder_type": "organisation", "business_registration_number": "123"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="id_business_registration_number_error"' in body or 'id="id_name_error"' in body
    assert 'value="123"' in body


def test_an_invited_person_joins_with_the_role_given(
    owner_client, holder, outsider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/dashboard/members/", {"email": outsider.email, "role": "admin"})
    assert response.status_code == 302
    link = _link(mail.outbox[0])
    invited = signed_in(outsider)
    assert invited.get(link).status_code == 200
    response = invited.post(link)
    assert response.status_code == 302
    assert Membership.objects.get(party=holder, user=outsider).role == MemberRole.ADMIN


def test_an_invitation_cannot_be_used_by_another_account(
    owner_client, holder, outsider, co_owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/dashboard/members/", {"email": outsider.email, "role": "member"})
    link = _link(mail.outbox[0])
    response = signed_in(co_owner).post(link)
    assert response.status_code == 400
    assert not Membership.objects.filter(party=holder, user=co_owner).exists()


def test_a_plain_member_cannot_invite_or_change_roles(holder, outsider, owner):
    from core.actors import Actor
    from registry.services import membership_add

    membership_add(actor=Actor.system(), party=holder, user=outsider, role="member", _skip_check=True)
    client = signed_in(outsider)
    response = client.post("/dashboard/members/", {"email": "z@example.kr", "role": "owner"})
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(code="portal.invitation.sent").exists()
    owner_membership = Membership.objects.get(party=holder, user=owner)
    response = client.post(f"/dashboard/members/{owner_membership.pk}/role/", {"role": "member"})
    assert response.status_code == 404
    assert Membership.objects.get(pk=owner_membership.pk).role == MemberRole.OWNER


def test_the_last_owner_cannot_be_removed(owner_client, holder, owner):
    membership = Membership.objects.get(party=holder, user=owner)
    response = owner_client.post(f"/dashboard/members/{membership.pk}/remove/", follow=True)
    assert "A party keeps at least one owner." in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()
