from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from compensation.models import Tariff, UsageUnit
from registry.models import WorkKind


class TariffListFilter(serializers.Serializer):
    kind = serializers.ChoiceField(choices=WorkKind.choices, required=False)
    unit = serializers.ChoiceField(choices=UsageUnit.choices, required=False)


class TariffInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=WorkKind.choices)
    unit = serializers.ChoiceField(choices=UsageUnit.choices)
    rate_krw = serializers.DecimalField(
        max_digits=24,
        decimal_places=12,
        min_value=Decimal(0),
        help_text=_('KRW per one unit, exact; send it as a string, e.g. "0.0005".'),
    )
    effective_from = serializers.DateTimeField(required=False, allow_null=True, default=None)


class TariffOutput(serializers.ModelSerializer):
    rate_krw = serializers.DecimalField(max_digits=24, decimal_places=12, normalize_output=True)

    class Meta:
        model = Tariff
        fields = ["id", "kind", "unit", "rate_krw", "effective_from", "created_at"]


class BalanceFilter(serializers.Serializer):
    party = serializers.IntegerField(required=False, help_text=_("Staff only: another party's balance."))
    period_start = serializers.DateTimeField(required=False, allow_null=True, default=None)
    period_end = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        start, end = attrs.get("period_start"), attrs.get("period_end")
        if start is not None and end is not None and end <= start:  # type: ignore[operator]
            raise serializers.ValidationError({"period_end": _("The period ends after it starts.")})
        return attrs


class BalanceMonthOutput(serializers.Serializer):
    month = serializers.CharField(help_text=_("YYYY-MM, in Korean time."))
    by_kind = serializers.DictField(child=serializers.IntegerField())


class BalanceOutput(serializers.Serializer):
    party = serializers.IntegerField()
    party_name = serializers.CharField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    unit = serializers.CharField(
        help_text=_("Amounts are integers in micro-won (1 won = 1,000,000); debits positive, credits negative.")
    )
    by_kind = serializers.DictField(child=serializers.IntegerField())
    by_month = BalanceMonthOutput(many=True)
