"""RFC 8785 JSON Canonicalization Scheme (JCS), strict form, for verifying the registry's signatures.

The registry signs the JCS bytes of a payload (a lookup response or a snapshot manifest without its ``receipt``).
Verification must rebuild exactly those bytes from the JSON as received, so this is the whole RFC: object members
ordered by the UTF-16 code units of their names, strings escaped as ECMAScript's ``JSON.stringify`` does, and
numbers written as ECMAScript's ``Number.prototype.toString`` writes an IEEE double.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["canonicalize"]


def canonicalize(value: Any) -> bytes:
    """The JCS serialization of ``value`` (as ``json.loads`` returns it), as UTF-8 bytes.

    Raises ``ValueError`` for what I-JSON forbids: NaN or infinite numbers, lone surrogates in strings, and
    ``TypeError`` for values that are not JSON (sets, bytes, non-string object keys).
    """
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("JCS strings must not hold lone surrogates.") from None


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings, not {type(key).__name__}.")
        out.append("{")
        for position, key in enumerate(sorted(value, key=lambda name: name.encode("utf-16-be", "surrogatepass"))):
            if position:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value.")


def _string(text: str) -> str:
    # json.dumps with ensure_ascii=False escapes exactly what JSON.stringify does: '"', '\\', and the C0 controls
    # (\b \t \n \f \r by name, the rest as \u00xx in lower-case hex); everything else is written literally.
    return json.dumps(text, ensure_ascii=False)


def _number(value: int | float) -> str:
    """ECMAScript's Number.prototype.toString of the IEEE double nearest ``value``."""
    if isinstance(value, int) and abs(value) <= 2**53:
        return str(value)
    number = float(value)  # OverflowError for integers beyond any double: not I-JSON
    if math.isnan(number) or math.isinf(number):
        raise ValueError("JCS has no NaN or infinite numbers.")
    if number == 0:
        return "0"  # also -0
    sign = "-" if number < 0 else ""
    # repr gives the shortest digit string that round-trips, which is what ECMAScript's algorithm picks too.
    exponent_tuple = Decimal(repr(abs(number))).as_tuple()
    digits = "".join(map(str, exponent_tuple.digits)).rstrip("0") or "0"
    stripped = len("".join(map(str, exponent_tuple.digits))) - len(digits)
    assert isinstance(exponent_tuple.exponent, int)
    k = len(digits)
    n = k + exponent_tuple.exponent + stripped  # value = 0.digits x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text
