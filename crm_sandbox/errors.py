"""The error Salesforce answers with, as an exception the app turns into a JSON response.

Salesforce's REST API reports errors as a JSON array of ``{"message", "errorCode", "fields"}``
and picks the HTTP status by kind; simple-salesforce maps that status onto its exception classes.
"""

from __future__ import annotations

import secrets
from typing import Any


class SalesforceApiError(Exception):
    """An API error: HTTP status, Salesforce errorCode, message and the fields concerned."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        fields: list[str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields or [])

    def body(self) -> list[dict[str, Any]]:
        """The JSON body Salesforce sends for this error."""
        return [{"message": self.message, "errorCode": self.error_code, "fields": self.fields}]


def malformed_query(message: str) -> SalesforceApiError:
    """400 MALFORMED_QUERY: the SOQL text does not parse or breaks a SOQL rule."""
    return SalesforceApiError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str, fields: list[str] | None = None) -> SalesforceApiError:
    """400 INVALID_FIELD: a field that does not exist or cannot be used that way."""
    return SalesforceApiError(400, "INVALID_FIELD", message, fields)


def not_found(message: str = "The requested resource does not exist") -> SalesforceApiError:
    """404 NOT_FOUND."""
    return SalesforceApiError(404, "NOT_FOUND", message)


def unknown_exception() -> SalesforceApiError:
    """500 UNKNOWN_EXCEPTION: Salesforce's answer to an internal error. It names an ErrorId for
    support and never the cause, so no internal detail (a query, a path, a value) leaks out."""
    error_id = (
        f"{1_000_000_000 + secrets.randbelow(9_000_000_000)}-"
        f"{100_000 + secrets.randbelow(900_000)} (-{secrets.randbelow(2**31)})"
    )
    return SalesforceApiError(
        500,
        "UNKNOWN_EXCEPTION",
        f"An unexpected error occurred. Please include this ErrorId if you contact support: "
        f"{error_id}",
    )
