"""The error Salesforce answers with, as an exception the app turns into a JSON response.

Salesforce's REST API reports errors as a JSON array of ``{"message", "errorCode", "fields"}``
and picks the HTTP status by kind; simple-salesforce maps that status onto its exception classes.
"""

from __future__ import annotations

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
