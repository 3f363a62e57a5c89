"""Abuse of sign-in and mail: the admin's login under the portal's lockout, staff's second factor, reset mail."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def _admin_login(client: Client, username: str, password: str, **extra: str) -> Any:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, **extra})


# --- The admin's login: the same limits as the portal's -------------------------------------------------


def test_forty_wrong_staff_passwords_lock_the_admin_login_even_for_the_right_one(staff):
    client = Client()
    for _attempt in range(40):
        _admin_login(client, staff.username, "wrong")

    response = _admin_login(client, staff.username, PASSWORD)

    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_admin_and_portal_failures_count_against_one_lockout(staff, settings):
    settings.LOGIN_MAX_FAILURES = 4
    for _attempt in range(2):
        Client().post("/accounts/login/", {"username": staff.username, "password": "wrong"})
        _admin_login(Client(), staff.username, "wrong")

    response = _admin_login(Client(), staff.username, PASSWORD)

    assert "Too many failed sign-in attempts" in response.content.decode()


def test_the_admin_login_is_limited_per_address_across_accounts(staff, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    client = Client()
    for name in ("a@x.kr", "b@x.kr", "c@x.kr"):
        _admin_login(client, name, "wrong")

    response = _admin_login(client, staff.username, PASSWORD)

    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_reach_the_admin_with_the_right_password_when_no_second_factor_is_required(staff, settings):
    settings.STAFF_OTP_REQUIRED = False
    client = Client()

    response = _admin_login(client, staff.username, PASSWORD)

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


# --- A second factor for staff (STAFF_OTP_REQUIRED) -------------------------------------------------------


@pytest.fixture
def otp_required(settings: Any) -> None:
    settings.STAFF_OTP_REQUIRED = True


def test_with_otp_required_staff_without_a_device_cannot_reach_the_admin(staff, otp_required):
    client = Client()

    response = _admin_login(client, staff.username, PASSWORD)

    assert response.status_code == 200  # the login page again, asking for a token
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/compensation/reports/").status_code == 302


def test_with_otp_required_the_admin_sign_in_asks_for_the_code_in_korean(staff, otp_required, settings):
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")

    page = client.get("/admin/login/").content.decode()
    asked = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD}).content.decode()

    assert "OTP 코드:" in page
    assert f"<title>로그인 | {settings.REGISTRY_NAME_KO}</title>" in page
    assert "OTP Token" not in page
    assert "OTP 코드를 입력해 주세요." in asked


def test_with_otp_required_a_password_session_from_the_portal_does_not_reach_the_admin(staff, otp_required):
    client = Client()
    client.post("/accounts/login/", {"username": staff.username, "password": PASSWORD})

    assert "_auth_user_id" in client.session
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/registry/work/").status_code == 302


def _device_for(staff: Any) -> TOTPDevice:
    out = io.StringIO()
    call_command("staff_totp_add", "--staff-user", staff.email, stdout=out)
    assert out.getvalue().strip().splitlines()[-1].startswith("otpauth://totp/")
    return TOTPDevice.objects.get(user=staff)


def test_with_otp_required_staff_reach_the_admin_with_a_device_token(staff, otp_required):
    device = _device_for(staff)
    token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    client = Client()

    response = _admin_login(
        client, staff.username, PASSWORD, otp_device=device.persistent_id, otp_token=f"{token:0{device.digits}d}"
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(code="registry.staff.totp_added").count() == 1


def test_with_otp_required_the_password_step_alone_is_not_a_failure(staff, otp_required, settings):
    settings.LOGIN_MAX_FAILURES = 2
    device = _device_for(staff)
    token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    for _attempt in range(3):
        asked_for_a_token = _admin_login(Client(), staff.username, PASSWORD)
        assert "otp_token" in asked_for_a_token.content.decode()
    client = Client()

    response = _admin_login(
        client, staff.username, PASSWORD, otp_device=device.persistent_id, otp_token=f"{token:0{device.digits}d}"
    )

    assert response.status_code == 302


def test_with_otp_required_wrong_tokens_count_toward_the_lockout(staff, otp_required, settings):
    settings.LOGIN_MAX_FAILURES = 3
    device = _device_for(staff)
    client = Client()
    for _attempt in range(3):
        _admin_login(client, staff.username, PASSWORD, otp_device=device.persistent_id, otp_token="000000")

    response = _admin_login(client, staff.username, PASSWORD)

    assert "Too many failed sign-in attempts" in response.content.decode()


# --- Password-reset mail ------------------------------------------------------------------------------------


def _reset(client: Client, email: str) -> Any:
    return client.post("/accounts/password/reset/", {"email": email})


def test_password_reset_mail_to_one_address_is_throttled_silently(owner, settings):
    settings.PASSWORD_RESET_MAX_PER_ACCOUNT = 3
    answers = [_reset(Client(REMOTE_ADDR=f"203.0.113.{n}"), owner.email) for n in range(20)]

    assert {(a.status_code, a["Location"]) for a in answers} == {(302, "/accounts/password/reset/done/")}
    assert len(mail.outbox) == 3
    assert {m.to[0] for m in mail.outbox} == {owner.email}


def test_password_reset_is_throttled_per_client_across_addresses(db, settings):
    settings.PASSWORD_RESET_MAX_PER_CLIENT = 10
    users = [get_user_model().objects.create_user(f"u{n}@x.kr", f"u{n}@x.kr", PASSWORD) for n in range(15)]
    client = Client()

    answers = [_reset(client, user.email) for user in users]

    assert {a.status_code for a in answers} == {302}
    assert len(mail.outbox) == 10


def test_a_throttled_reset_answers_as_one_for_an_unknown_address(owner, settings):
    settings.PASSWORD_RESET_MAX_PER_ACCOUNT = 1
    known = [_reset(Client(), owner.email) for _ in range(2)]
    unknown = [_reset(Client(), "nobody@x.kr") for _ in range(2)]

    assert [(a.status_code, a["Location"]) for a in known] == [(a.status_code, a["Location"]) for a in unknown]
    assert len(mail.outbox) == 1
