"""Helpers shared by the registry tests: catalogue files for work imports."""

from __future__ import annotations

from stdnum import ean

HEADER = "title,kind,identifiers,creators,language,creation_year,share_bp\n"


def isbn(n: int) -> str:
    """A valid ISBN-13 numbered ``n`` (978 and nine digits)."""
    body = f"978{n:09d}"
    return body + ean.calc_check_digit(body)


def bad_isbn(n: int) -> str:
    """``isbn(n)`` with a wrong check digit."""
    good = isbn(n)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def csv_rows(*rows: str, header: str = HEADER) -> bytes:
    """A catalogue CSV: ``header`` and one line per row."""
    return (header + "".join(f"{row}\n" for row in rows)).encode()
