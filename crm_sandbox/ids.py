"""Salesforce record Ids: 18 characters, key prefix first, case-safe checksum last.

A 15-character Id is case-sensitive; Salesforce appends three characters encoding which of the
15 are upper-case so that the 18-character form survives case-insensitive systems. Generating
the same shape keeps the sandbox honest for code that validates or shortens Ids.
"""

from __future__ import annotations

import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Characters 4-6 of a real Id name the pod and a reserved digit; any fixed value will do.
_POD = "5e0"
_SERIAL_WIDTH = 9
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum_suffix(id15: str) -> str:
    """The three-character case-safety suffix of a 15-character Id."""
    suffix = []
    for chunk_start in range(0, 15, 5):
        bits = 0
        for offset, ch in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << offset
        suffix.append(_SUFFIX_ALPHABET[bits])
    return "".join(suffix)


def make_id(key_prefix: str, serial: int) -> str:
    """The 18-character Id number ``serial`` (>= 1) of the object with ``key_prefix``."""
    if len(key_prefix) != 3 or serial < 1:
        raise ValueError(f"bad Id parts: {key_prefix!r}, {serial}")
    digits = []
    value = serial
    while value:
        value, rem = divmod(value, 62)
        digits.append(_BASE62[rem])
    body = "".join(reversed(digits)).rjust(_SERIAL_WIDTH, "0")
    if len(body) > _SERIAL_WIDTH:
        raise ValueError(f"serial {serial} does not fit in an Id")
    id15 = key_prefix + _POD + body
    return id15 + checksum_suffix(id15)


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is a well-formed 15- or 18-character Id (checksum included)."""
    if not _ID_RE.match(value):
        return False
    return len(value) == 15 or checksum_suffix(value[:15]) == value[15:]


def to_18(value: str) -> str:
    """The 18-character form of a well-formed 15- or 18-character Id."""
    return value if len(value) == 18 else value + checksum_suffix(value)
