"""The ``any_of`` lookup finds exactly the given values, whatever characters they hold."""

from __future__ import annotations

import pytest

from core.actors import Actor
from registry.models import Identifier
from registry.services import work_draft_build, work_register

pytestmark = pytest.mark.django_db

AWKWARD = ['https://a.example/q?x="1"', "https://a.example/back\\slash", "https://a.example/{brace},comma", "NULL", ""]


def test_any_of_matches_awkward_strings_and_integers(holder):
    work, _claim = work_register(
        actor=Actor.system(),
        holder=holder,
        draft=work_draft_build(title="W", kind="text", identifiers=[{"scheme": "isbn", "value": "9780306406157"}]),
    )
    Identifier.objects.bulk_create([Identifier(work=work, scheme="url", value=value) for value in AWKWARD if value])

    found = set(Identifier.objects.filter(value__any_of=frozenset(AWKWARD)).values_list("value", flat=True))
    by_work = Identifier.objects.filter(work__id__any_of=frozenset({work.pk, 10**12})).count()
    nothing = Identifier.objects.filter(value__any_of=frozenset()).count()

    assert found == {value for value in AWKWARD if value}
    assert by_work == len(AWKWARD)
    assert nothing == 0
