"""Field values between their three forms: stored (SQLite), API JSON out, API JSON in.

Output follows Salesforce's JSON: datetimes ``2026-11-26T10:00:00.000+0000``, dates
``2026-11-26``, booleans and numbers as JSON, multi-select picklists as one ``;``-joined string.
Input is validated the way Salesforce validates a write, with its error codes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crm_sandbox import store
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.ids import is_valid_id, to_18
from crm_sandbox.objects import FieldDef, FieldType

# Salesforce's own email check is loose too: one @, no spaces, a dot in the domain.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def to_api(f: FieldDef, stored: Any) -> Any:
    """The JSON value of a stored value of field ``f``."""
    if stored is None:
        return None
    if f.type is FieldType.BOOLEAN:
        return bool(stored)
    if f.type is FieldType.INT:
        return int(stored)
    if f.type in (FieldType.DOUBLE, FieldType.CURRENCY):
        return float(stored)
    if f.type is FieldType.DATETIME:
        return to_api_datetime(str(stored))
    return stored


def to_api_datetime(stored: str) -> str:
    """The JSON form of a stored datetime (``...T10:00:00.000Z`` -> ``...T10:00:00.000+0000``)."""
    return stored.removesuffix("Z") + "+0000"


def parse_api_datetime(text: str) -> datetime:
    """Parse a datetime as Salesforce accepts it on writes (offset optional, meaning UTC)."""
    candidate = text.strip().replace("Z", "+00:00")
    candidate = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", candidate)
    parsed = datetime.fromisoformat(candidate)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _error(status_code: str, f: FieldDef, message: str) -> SalesforceApiError:
    return SalesforceApiError(400, status_code, f"{f.label}: {message}", [f.name])


def _json_error(f: FieldDef, value: Any, kind: str) -> SalesforceApiError:
    return SalesforceApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {type(value).__name__} value {value!r} "
        f"or request may be missing a required field (field {f.name})",
        [f.name],
    )


def _number(f: FieldDef, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _json_error(f, value, f.type.value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise _json_error(f, value, f.type.value) from exc
    if not number.is_finite():
        raise _json_error(f, value, f.type.value)
    if f.type is FieldType.INT:
        if number != number.to_integral_value():
            raise _json_error(f, value, "int")
        return number
    # Salesforce rounds to the field's scale and rejects values with too many integer digits.
    rounded = number.quantize(Decimal(1).scaleb(-f.scale), rounding=ROUND_HALF_UP)
    if f.precision and abs(rounded) >= Decimal(10) ** (f.precision - f.scale):
        raise _error(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f,
            f"value outside of valid range on numeric field: {value}",
        )
    return rounded


def _picklist(f: FieldDef, text: str) -> str:
    if f.type is FieldType.MULTIPICKLIST:
        values = [v.strip() for v in text.split(";") if v.strip()]
    else:
        values = [text]
    if f.restricted_picklist:
        allowed = {v.lower(): v for v in f.picklist_values}
        for v in values:
            if v.lower() not in allowed:
                raise _error(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f,
                    f"bad value for restricted picklist field: {v}",
                )
        values = [allowed[v.lower()] for v in values]
    if f.type is FieldType.MULTIPICKLIST:
        order = {v: i for i, v in enumerate(f.picklist_values)}
        unique = list(dict.fromkeys(values))
        return ";".join(sorted(unique, key=lambda v: (order.get(v, len(order)), v)))
    return values[0]


def from_api(f: FieldDef, value: Any) -> Any:
    """The stored value for a JSON value written to field ``f``; raise the Salesforce error.

    A missing value (``None``, or an empty string on a text field) clears the field; whether the
    field may be empty is checked by the caller, which knows the whole record.
    """
    if value is None:
        return 0 if f.type is FieldType.BOOLEAN else None
    if f.type is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return int(value.lower() == "true")
        raise _json_error(f, value, "boolean")
    if f.is_number:
        number = _number(f, value)
        return int(number) if f.type is FieldType.INT else float(number)
    if f.type is FieldType.DATE:
        if not isinstance(value, str):
            raise _json_error(f, value, "date")
        try:
            return date.fromisoformat(value.strip()[:10]).isoformat()
        except ValueError as exc:
            raise _json_error(f, value, "date") from exc
    if f.type is FieldType.DATETIME:
        if not isinstance(value, str):
            raise _json_error(f, value, "datetime")
        try:
            return store.to_storage_datetime(parse_api_datetime(value))
        except ValueError as exc:
            raise _json_error(f, value, "datetime") from exc
    # Text types: Salesforce accepts JSON numbers and stores their text.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _json_error(f, value, "string")
    text = str(value)
    if text == "":
        return None
    if f.type in (FieldType.ID, FieldType.REFERENCE):
        if not is_valid_id(text):
            raise _error("MALFORMED_ID", f, f"id value of incorrect type: {text}")
        return to_18(text)
    if f.length and len(text) > f.length:
        raise _error(
            "STRING_TOO_LONG", f, f"data value too large: {text[:40]} (max length={f.length})"
        )
    if f.type is FieldType.EMAIL and not _EMAIL_RE.match(text):
        raise _error("INVALID_EMAIL_ADDRESS", f, f"invalid email address: {text}")
    if f.type in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        return _picklist(f, text)
    return text
