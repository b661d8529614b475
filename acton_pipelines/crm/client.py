"""A thin, explicit CRM client over simple-salesforce: paging, retries, API-call accounting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

logger = logging.getLogger(__name__)


class CrmUnavailable(RuntimeError):
    """The CRM could not be reached or refused us; the message says what to check."""


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: 5xx, the org's request limit, dropped connections."""
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(error, SalesforceRefusedRequest):
        return "REQUEST_LIMIT_EXCEEDED" in str(error.content)
    if isinstance(error, SalesforceGeneralError):
        return error.status >= 500
    return False


@dataclass
class RetryPolicy:
    """How often and how patiently transient CRM errors are retried."""

    attempts: int = 5
    initial_wait_seconds: float = 1.0
    max_wait_seconds: float = 30.0


@dataclass
class QueryPage:
    """One page of a SOQL query: its records and the size of the whole query."""

    records: list[dict[str, Any]]
    total_size: int


@dataclass
class CrmClient:
    """Reads from the CRM through simple-salesforce, counting the API calls it spends.

    ``relogin`` (optional) returns a fresh ``Salesforce`` when the session expires; clients
    built from a username and password re-login by themselves inside simple-salesforce.
    """

    sf: Salesforce
    relogin: Callable[[], Salesforce] | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    api_calls: int = 0
    _describes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def _call(self, operation: Callable[[Salesforce], Any]) -> Any:
        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "CRM call failed (%s); retry %d of %d",
                type(error).__name__,
                state.attempt_number,
                self.retry_policy.attempts - 1,
            )

        @retry(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.retry_policy.attempts),
            wait=wait_exponential(
                multiplier=self.retry_policy.initial_wait_seconds,
                max=self.retry_policy.max_wait_seconds,
            ),
            before_sleep=log_retry,
            reraise=True,
        )
        def attempt() -> Any:
            self.api_calls += 1
            try:
                return operation(self.sf)
            except SalesforceExpiredSession:
                if self.relogin is None:
                    raise
                # One fresh login, then the call once more; a second 401 is a real error.
                self.sf = self.relogin()
                self.api_calls += 2
                return operation(self.sf)

        try:
            return attempt()
        except requests.ConnectionError as error:
            raise CrmUnavailable(
                f"cannot reach the CRM at {self.sf.sf_instance}: {type(error).__name__}. "
                "Check the instance URL and the network, then run the sync again."
            ) from error

    def call(self, operation: Callable[[Salesforce], Any]) -> Any:
        """Any simple-salesforce call, with the client's retries and API-call accounting."""
        return self._call(operation)

    def describe(self, object_name: str) -> dict[str, Any]:
        """The object's describe (fields with their types), fetched once per client."""
        if object_name not in self._describes:
            self._describes[object_name] = self._call(
                lambda sf: getattr(sf, object_name).describe()
            )
        return self._describes[object_name]

    def deleted(self, object_name: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Salesforce's getDeleted for ``[start, end)``: ``deletedRecords``,
        ``earliestDateAvailable`` (how far back the deletion log reaches), ``latestDateCovered``."""
        return self._call(lambda sf: getattr(sf, object_name).deleted(start, end))

    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[QueryPage]:
        """Run a SOQL query and yield its pages (up to 2,000 records each) as they arrive.

        Each page is fetched (and retried) on its own, so memory holds one page at a time.
        """
        result = self._call(lambda sf: sf.query(soql, include_deleted=include_deleted))
        total = int(result.get("totalSize", 0))
        while True:
            yield QueryPage(records=result.get("records", []), total_size=total)
            if result.get("done", True):
                return
            next_url = result["nextRecordsUrl"]
            result = self._call(lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True))

    @property
    def api_usage(self) -> str | None:
        """The org's API usage as last reported (``Sforce-Limit-Info``), e.g. ``"120/100000"``."""
        usage = self.sf.api_usage.get("api-usage")
        return f"{usage.used}/{usage.total}" if usage else None


def describe_error(error: SalesforceError) -> str:
    """A one-line explanation of a Salesforce error body (``[{"message", "errorCode"}]``)."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}"
    return f"HTTP {error.status}: {content}"
