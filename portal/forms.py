"""Portal forms: they shape what people type for the services, which do the validating that matters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from compensation.models import TaxIdKind, TaxStatus
from core.dates import validate_date_in_range
from optout.models import Purpose, RefusalScope
from portal import ratelimit
from registry.identifiers import Scheme
from registry.models import (
    ApiScope,
    DomainMethod,
    EvidenceKind,
    HolderType,
    MandatePower,
    MandateScope,
    MemberRole,
    PartyKind,
    StatementsTo,
    WorkKind,
)

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format=DATETIME_LOCAL)


def _datetime_field(label: Any, help_text: Any = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        help_text=help_text,
        widget=DateTimeLocalInput(),
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[validate_date_in_range],
    )


# --- Accounts ------------------------------------------------------------------------------------------


class SignupForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters; not only digits, and not a common password."),
    )
    password2 = forms.CharField(
        label=_("Password again"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", _("The two passwords differ."))
        return data


class LoginForm(AuthenticationForm):
    """Sign-in by e-mail address, refused for a while after too many failures for the account or the address."""

    username = forms.CharField(
        label=_("E-mail address"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("The e-mail address or the password is wrong."),
        "inactive": _("Confirm your e-mail address first: follow the link in the mail we sent you."),
    }

    def clean(self) -> dict[str, Any]:
        username = (self.cleaned_data.get("username") or "").strip()
        password = self.cleaned_data.get("password")
        request: HttpRequest | None = self.request
        address = ratelimit.client_address(request) if request is not None else "-"
        wait = ratelimit.login_wait_minutes(username=username, address=address)
        if wait is not None:
            raise forms.ValidationError(
                _("Too many failed sign-in attempts. Try again in %(minutes)s minutes, or reset your password."),
                code="rate_limited",
                params={"minutes": wait},
            )
        if username and password:
            self.user_cache = authenticate(request, username=username.lower(), password=password)
            if self.user_cache is None:
                inactive = self._inactive_user(username.lower(), password)
                if inactive:
                    raise forms.ValidationError(self.error_messages["inactive"], code="inactive")
                ratelimit.login_failed(username=username, address=address)
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
            ratelimit.login_succeeded(username=username, address=address)
        return self.cleaned_data

    @staticmethod
    def _inactive_user(username: str, password: str) -> bool:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username=username, is_active=False).first()
        return user is not None and user.check_password(password)


# --- Parties and members -----------------------------------------------------------------------------------


class PartyForm(forms.Form):
    kind = forms.ChoiceField(label=_("I register as"), choices=PartyKind.choices, widget=forms.RadioSelect)
    name = forms.CharField(label=_("Name"), max_length=200, help_text=_("As it should appear to others."))
    holder_type = forms.ChoiceField(
        label=_("Person or organisation"), choices=HolderType.choices, initial=HolderType.ORGANISATION
    )
    isni = forms.CharField(label=_("ISNI (optional)"), required=False, max_length=19)
    business_registration_number = forms.CharField(
        label=_("Business registration number (optional)"),
        required=False,
        max_length=12,
        help_text=_("사업자등록번호: 10 digits."),
    )


class MandateInviteForm(forms.Form):
    member_email = forms.EmailField(
        label=_("The member's e-mail address"),
        help_text=_("The e-mail its owner signs in with; the invitation waits in their portal."),
    )
    scope = forms.ChoiceField(
        label=_("The mandate covers"),
        choices=[
            (MandateScope.CATALOGUE, _("The member's whole catalogue")),
            (MandateScope.KINDS, _("The member's works of some kinds")),
        ],
        widget=forms.RadioSelect,
        initial=MandateScope.CATALOGUE,
        help_text=_("A mandate for listed works is made through the API (POST /api/v1/mandates)."),
    )
    kinds = forms.MultipleChoiceField(
        label=_("Kinds"), choices=WorkKind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    powers = forms.MultipleChoiceField(
        label=_("Powers"),
        choices=MandatePower.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[MandatePower.REFUSE],
    )
    statements_to = forms.ChoiceField(
        label=_("Statements go to"), choices=StatementsTo.choices, initial=StatementsTo.MEMBER
    )


class MemberRefusalForm(forms.Form):
    purpose = forms.ChoiceField(
        label=_("Refuse"),
        choices=[
            (Purpose.TRAIN_AI, _("Any AI model training")),
            (Purpose.TRAIN_GENAI, _("Generative AI model training only")),
        ],
        widget=forms.RadioSelect,
        initial=Purpose.TRAIN_AI,
    )


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"))
    role = forms.ChoiceField(label=_("Role"), choices=MemberRole.choices, initial=MemberRole.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=MemberRole.choices)


# --- Works ---------------------------------------------------------------------------------------------------


class WorkForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=500)
    kind = forms.ChoiceField(label=_("Kind"), choices=WorkKind.choices)
    creators = forms.CharField(
        label=_("Creators"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line."),
    )
    language = forms.CharField(
        label=_("Language"), required=False, max_length=35, help_text=_("A language tag such as ko or en-US.")
    )
    creation_year = forms.IntegerField(label=_("Year of creation"), required=False)
    share_percent = forms.DecimalField(
        label=_("Your share (%)"),
        initial=Decimal(100),
        min_value=Decimal("0.01"),
        max_value=Decimal(100),
        decimal_places=2,
        help_text=_("100 if you hold all the rights."),
    )

    def creators_list(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("creators", "").splitlines() if line.strip()]

    def share_bp(self) -> int:
        return int(self.cleaned_data["share_percent"] * 100)


class IdentifierForm(forms.Form):
    scheme = forms.ChoiceField(
        label=_("Scheme"),
        choices=[("", pgettext_lazy("identifier scheme", "Choose…")), *Scheme.choices],
        required=False,
    )
    value = forms.CharField(label=_("Identifier"), max_length=2000, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("value") and not data.get("scheme"):
            self.add_error("scheme", _("Choose the identifier's scheme."))
        return data


IdentifierFormSet = forms.formset_factory(IdentifierForm, extra=2, max_num=20, absolute_max=20)


class ClaimForm(forms.Form):
    share_percent = forms.DecimalField(
        label=_("Your share (%)"),
        initial=Decimal(100),
        min_value=Decimal("0.01"),
        max_value=Decimal(100),
        decimal_places=2,
        help_text=_("100 if you hold all the rights."),
    )
    valid_from = forms.DateField(
        label=_("Valid from"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_date_in_range],
    )

    def share_bp(self) -> int:
        return int(self.cleaned_data["share_percent"] * 100)


class EvidenceForm(forms.Form):
    """A piece of evidence for a claim (``registry.services.claim_evidence_add`` checks what each kind needs)."""

    evidence_kind = forms.ChoiceField(label=_("Evidence"), choices=EvidenceKind.choices)
    evidence_file = forms.FileField(
        label=_("File"),
        required=False,
        help_text=_(
            "The certificate, contract or publication record (PDF or image). Only you and registry staff see it."
        ),
    )
    registration_number = forms.CharField(
        label=_("Registration number"),
        required=False,
        max_length=40,
        help_text=_("A Korea Copyright Commission registration number, C-YYYY-NNNNNN."),
    )
    party_identifier = forms.CharField(label=_("ISNI or IPI"), required=False, max_length=40)
    evidence_text = forms.CharField(label=_("Text"), required=False, widget=forms.Textarea(attrs={"rows": 3}))


class ClaimWithEvidenceForm(ClaimForm, EvidenceForm):
    """Claim a share of a work, with a first piece of evidence if there is one."""

    evidence_kind = forms.ChoiceField(
        label=_("Evidence"), choices=[("", _("None for now")), *EvidenceKind.choices], required=False
    )


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_(
            "CSV (UTF-8), XLSX or JSON Lines with the columns title, kind, identifiers and optional others; or a "
            "catalogue: CWR (.cwr, .v21, .v22), DDEX ERN or ONIX 3.0 (.xml)."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,.jsonl,.ndjson,.cwr,.v21,.v22,.xml"}),
    )


class WorkFileForm(forms.Form):
    file = forms.FileField(
        label=_("The work's file"),
        help_text=_(
            "Uploaded and fingerprinted by the registry: its SHA-256 and ISCC-CODE become identifiers of the work. "
            "The file is deleted once fingerprinted."
        ),
    )


class IdentifierAddForm(forms.Form):
    scheme = forms.ChoiceField(label=_("Scheme"), choices=Scheme.choices, initial=Scheme.SHA256)
    value = forms.CharField(label=_("Identifier"), max_length=2000)


# --- Refusals and domains -------------------------------------------------------------------------------------


class StartChoice:
    NOW = "now"
    LATER = "later"


START_CHOICES = [(StartChoice.NOW, _("Now")), (StartChoice.LATER, _("From a later date and time"))]


class RefusalForm(forms.Form):
    scope = forms.ChoiceField(
        label=_("What to refuse"),
        choices=[
            (RefusalScope.WORK, _("Selected works")),
            (RefusalScope.CATALOGUE, _("My whole catalogue, present and future works")),
            (RefusalScope.URL_PREFIX, _("Every URL under a prefix on one of my verified domains")),
        ],
        widget=forms.RadioSelect,
        initial=RefusalScope.WORK,
    )
    works = forms.TypedMultipleChoiceField(
        label=_("Works"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    url_prefix = forms.CharField(
        label=_("URL prefix"),
        required=False,
        max_length=2000,
        help_text=_("e.g. https://news.example.kr/2026/ — every URL starting with it is covered."),
    )
    purpose = forms.ChoiceField(
        label=_("Refuse"),
        choices=[
            (Purpose.TRAIN_AI, _("Any AI model training")),
            (Purpose.TRAIN_GENAI, _("Generative AI model training only")),
        ],
        widget=forms.RadioSelect,
        initial=Purpose.TRAIN_AI,
    )
    start = forms.ChoiceField(label=_("From"), choices=START_CHOICES, widget=forms.RadioSelect, initial="now")
    effective_from = _datetime_field(_("Date and time"), _("Korean time (KST) unless your browser says otherwise."))

    def __init__(self, *args: Any, work_choices: list[tuple[int, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        works_field = self.fields["works"]
        assert isinstance(works_field, forms.TypedMultipleChoiceField)
        works_field.choices = work_choices or []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") == StartChoice.LATER and not data.get("effective_from"):
            self.add_error("effective_from", _("Give the date and time the refusal starts."))
        return data


class WithdrawForm(forms.Form):
    start = forms.ChoiceField(label=_("Opt back in"), choices=START_CHOICES, widget=forms.RadioSelect, initial="now")
    effective_at = _datetime_field(_("Date and time"))
    confirm = forms.BooleanField(label=_("I understand what changes."))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") == StartChoice.LATER and not data.get("effective_at"):
            self.add_error("effective_at", _("Give the date and time the withdrawal takes effect."))
        return data


class DomainForm(forms.Form):
    origin = forms.CharField(
        label=_("Web address (origin)"),
        max_length=300,
        help_text=_("Scheme and host only, e.g. https://news.example.kr"),
    )
    method = forms.ChoiceField(
        label=_("How you prove control"),
        choices=DomainMethod.choices,
        widget=forms.RadioSelect,
        initial=DomainMethod.FILE,
    )


# --- Labs ------------------------------------------------------------------------------------------------


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, required=False, help_text=_("e.g. training-pipeline"))
    scopes = forms.MultipleChoiceField(
        label=_("Allowed to"),
        choices=[(s.value, s.label) for s in ApiScope if s != ApiScope.STAFF],
        widget=forms.CheckboxSelectMultiple,
    )
    password = forms.CharField(
        label=_("Your password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=_("Needed only for a key that may change payout details (payouts:write)."),
    )


class ManifestForm(forms.Form):
    manifest_id = forms.CharField(
        label=_("Manifest id"),
        max_length=200,
        help_text=_("Your own id for this report; resubmitting it changes nothing."),
    )
    model = forms.CharField(label=_("Model"), max_length=200)
    model_version = forms.CharField(label=_("Model version"), max_length=200, required=False)
    purpose = forms.ChoiceField(
        label=_("Purpose"),
        choices=[(Purpose.TRAIN_GENAI, Purpose.TRAIN_GENAI.label), (Purpose.TRAIN_AI, Purpose.TRAIN_AI.label)],
    )
    period_start = forms.DateField(
        label=_("Period start"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_date_in_range],
    )
    period_end = forms.DateField(
        label=_("Period end"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_date_in_range],
    )
    file = forms.FileField(
        label=_("Lines file"),
        help_text=_("CSV or JSON Lines (gzip allowed) with identifier or scheme and value, units, unit, used_at."),
    )


class LookupForm(forms.Form):
    purpose = forms.ChoiceField(
        label=_("Purpose"),
        choices=[(Purpose.TRAIN_GENAI, Purpose.TRAIN_GENAI.label), (Purpose.TRAIN_AI, Purpose.TRAIN_AI.label)],
    )
    items = forms.CharField(
        label=_("Identifiers"),
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("One per line: scheme:value (isbn:9788936434021) or a URL. At most 1,000."),
    )


class ReceiptForm(forms.Form):
    receipt = forms.CharField(
        label=_("Lookup response with its receipt (JSON)"),
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text=_("Paste the whole response of a lookup as you received it."),
    )


class LicensingContactForm(forms.Form):
    licensing_email = forms.EmailField(label=_("Licensing e-mail"), required=False, max_length=254)
    licensing_url = forms.URLField(
        label=_("Licensing web page"),
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=_("Shown on the public page of your works. Leave both empty to show none."),
    )


class PayoutProfileForm(forms.Form):
    """Where the holder's money goes. The numbers are never shown again (only masked), so the form starts empty
    for them; changing anything needs the signed-in person's password again."""

    payee_name = forms.CharField(label=_("Payee's legal name"), max_length=200)
    bank_name = forms.CharField(label=_("Bank"), max_length=100)
    account_number = forms.CharField(label=_("Account number"), max_length=40)
    tax_id_kind = forms.ChoiceField(label=_("Tax number kind"), choices=TaxIdKind.choices)
    tax_id = forms.CharField(
        label=_("Resident or business registration number"),
        max_length=20,
        help_text=_("Needed for the tax withheld from payouts; stored encrypted and shown masked."),
    )
    tax_status = forms.ChoiceField(
        label=_("Tax status"),
        choices=TaxStatus.choices,
        help_text=_("Individuals' fees are business income, withheld at 3.3 percent; corporations' are not."),
    )
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=_("Changing where your money goes needs your password again."),
    )
