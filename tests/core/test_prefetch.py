"""Producing in a forked process one item ahead of the consumer (``core.prefetch``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import InvalidInput
from core.prefetch import ProducerFailed, prefetched_in_process
from registry.errors import InvalidIdentifier


def _items_then(error: BaseException) -> Iterator[int]:
    yield 1
    yield 2
    raise error


@pytest.mark.parametrize(
    "raised",
    [
        InvalidInput("The file is not UTF-8 text.", code="unreadable_file", field="file"),
        InvalidIdentifier("The check digit is wrong.", code="invalid_checksum", field="value"),
    ],
    ids=["base-domain-error", "subclass"],
)
def test_a_domain_error_in_the_producer_is_made_again_with_its_class_code_message_and_field(raised):
    received: list[int] = []
    with pytest.raises(ProducerFailed) as failed, prefetched_in_process(lambda: _items_then(raised)) as items:
        received.extend(items)

    # What came before the error arrives; the error comes where it happened.
    assert received == [1, 2]
    error = failed.value.registry_error()
    assert error is not None
    assert type(error) is type(raised)
    assert (error.code, str(error.message), error.field) == (raised.code, str(raised.message), raised.field)
    assert "_items_then" in failed.value.details


def test_any_other_error_in_the_producer_is_no_domain_error():
    with (
        pytest.raises(ProducerFailed) as failed,
        prefetched_in_process(lambda: _items_then(FileNotFoundError("gone"))) as items,
    ):
        list(items)

    assert (failed.value.kind, failed.value.message) == ("FileNotFoundError", "gone")
    assert failed.value.registry_error() is None
