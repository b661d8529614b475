"""A thin, explicit CRM client over simple-salesforce: paging, retries, API-call accounting.

Retries fit the error:

- 5xx answers, timeouts, refused connections and connections dropped mid-response are
  transient: the call is retried with exponential backoff (``RetryPolicy``: by default waits of
  2 s doubling up to 2 min, for up to 10 min). When that time is up the call fails with a
  one-line ``CrmUnavailable`` ("CRM unavailable since HH:MM UTC after N attempts: ...").
- ``REQUEST_LIMIT_EXCEEDED`` is the org's rolling 24-hour API allocation, shared by every
  integration of the org: retrying within minutes only spends what others need, so the call
  fails at once with ``CrmRequestLimitExceeded``.
- Before it gets there, the client keeps a reserve of that allocation for the org's other
  integrations (``ACTON_API_RESERVE``, default 10%): once the usage the CRM last reported leaves
  no more than the reserve, the next call is not made (``CrmApiReserveReached``, never retried).
- An expired session logs in once more (``relogin``); anything else (a malformed query, an
  invalid field) is a bug or a configuration problem and is raised as simple-salesforce's error.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)
from tenacity.stop import stop_base

from acton_pipelines.errors import UserError

logger = logging.getLogger(__name__)

REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
API_RESERVE_ENV = "ACTON_API_RESERVE"
DEFAULT_API_RESERVE = "10%"
# Logins count against the org's login limits, not its API requests (Salesforce: the
# LimitInfoHeader covers "all calls, except for login()"). simple-salesforce speaks SOAP only to
# log in; OAuth token requests are logins too.
_LOGIN_PATH = re.compile(r"^/services/(oauth2/|Soap/[uc]/)", re.IGNORECASE)


class CrmUnavailable(UserError, RuntimeError):
    """The CRM could not be reached or refused us; the message says what to check."""


class CrmRetriesExhausted(CrmUnavailable):
    """A call kept failing transiently (5xx, timeouts, dropped connections) until the retry
    policy gave up; ``attempts`` were made since ``since`` (UTC), the last failing with
    ``cause``."""

    def __init__(self, since: datetime, attempts: int, cause: str) -> None:
        super().__init__(
            f"CRM unavailable since {since.astimezone(UTC):%H:%M} UTC after {attempts} "
            f"attempt{'s' if attempts != 1 else ''}: {cause}"
        )
        self.since = since
        self.attempts = attempts
        self.cause = cause


class CrmRequestLimitExceeded(CrmUnavailable):
    """The org's daily API request limit is exhausted (403 ``REQUEST_LIMIT_EXCEEDED``).

    Never retried: the limit is a rolling 24-hour allocation shared by every integration of
    the org, so only time frees it up. ``api_usage`` is the last usage the CRM reported
    (``"100000/100000"``), or ``None`` when no call had reported it yet.
    """

    def __init__(self, api_usage: str | None) -> None:
        usage = f" (api-usage {api_usage})" if api_usage else ""
        super().__init__(
            f"the CRM org's daily API request limit is exhausted{usage}: REQUEST_LIMIT_EXCEEDED; "
            "syncs resume once the org's rolling 24-hour usage drops below the limit"
        )
        self.api_usage = api_usage


class CrmApiReserveReached(CrmUnavailable):
    """The org's remaining daily API calls are down to the reserve kept for its other
    integrations (``ACTON_API_RESERVE``): the run stops before its next call.

    Never retried: like the limit itself, only the rolling 24-hour window (or a smaller
    reserve) frees calls up.
    """

    def __init__(self, used: int, allowance: int, reserve: ApiReserve) -> None:
        self.remaining = allowance - used
        self.reserve_calls = reserve.calls_of(allowance)
        self.api_usage = f"{used}/{allowance}"
        share = f"{reserve} of {allowance:,}, " if reserve.percent is not None else ""
        super().__init__(
            f"the CRM org has {max(self.remaining, 0):,} of its {allowance:,} daily API calls "
            f"left (api-usage {self.api_usage}), at or below the reserve kept for its other "
            f"integrations ({API_RESERVE_ENV}: {share}{self.reserve_calls:,} calls); stopped "
            "before the next call: run again once the org's rolling 24-hour usage has dropped, "
            f"or lower {API_RESERVE_ENV}"
        )


@dataclass(frozen=True)
class ApiReserve:
    """How much of the org's daily API allocation a run leaves to the org's other integrations:
    a share (``percent``) or a number of ``calls``; zero keeps no reserve (the org's own limit
    then stops the run, with REQUEST_LIMIT_EXCEEDED).

    A share follows the allocation as the org buys more, which is why it is the default (10%,
    about where public connectors stop); a number suits an org whose other integrations need a
    known amount.
    """

    percent: float | None = None
    calls: int | None = None

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.calls is None):
            raise ValueError("an API reserve is either a percent or a number of calls")

    @classmethod
    def parse(cls, raw: str | None) -> ApiReserve:
        """``ACTON_API_RESERVE``'s value (``"10%"``, ``"2.5 %"``, ``"5000"``, ``"5_000"``);
        empty or ``None`` gives the default. A bad value is one ``CrmUnavailable`` line
        naming the variable, the value and a good example."""
        text = (raw or "").strip() or DEFAULT_API_RESERVE
        number = text.removesuffix("%").strip().replace("_", "").replace(",", "")
        try:
            if text.endswith("%"):
                percent = float(number)
                if math.isfinite(percent) and 0 <= percent < 100:
                    return cls(percent=percent)
            elif number.isdigit():
                return cls(calls=int(number))
        except ValueError:
            pass
        raise CrmUnavailable(
            f"{API_RESERVE_ENV}={raw!r} is not an API reserve; set it to the share of the org's "
            "daily API calls to leave to its other integrations, e.g. "
            f"{API_RESERVE_ENV}=10% (below 100%), or to a number of calls, e.g. "
            f"{API_RESERVE_ENV}=5000 (0 keeps no reserve)."
        )

    def calls_of(self, allowance: int) -> int:
        """The reserve in calls for an org allowed ``allowance`` calls a day (a share is
        rounded up: a 10% reserve of 5 calls keeps one)."""
        if self.calls is not None:
            return self.calls
        return math.ceil(allowance * (self.percent or 0.0) / 100)

    def __str__(self) -> str:
        if self.calls is not None:
            return str(self.calls)
        return f"{self.percent:g}%"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def salesforce_error_code(error: SalesforceError) -> str | None:
    """The ``errorCode`` of a Salesforce error body (``[{"message", "errorCode"}]``), if any."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        code = content[0].get("errorCode")
        return str(code) if code is not None else None
    return None


def _certificate_problem(error: BaseException) -> bool:
    """Whether a connection failed the TLS certificate check (a setup problem, not a blip)."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        # requests wraps urllib3's MaxRetryError, whose ``reason`` wraps the ssl error.
        pending += [*current.args, getattr(current, "reason", None), current.__cause__]
        pending.append(current.__context__)
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _sent_but_unanswered(error: BaseException) -> bool:
    """Whether the request reached the CRM but its answer was lost: it may have been applied."""
    return isinstance(error, requests.exceptions.ChunkedEncodingError | requests.ReadTimeout)


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: 5xx answers, timeouts, refused or dropped connections.

    A connection dropped mid-response surfaces as ``ChunkedEncodingError`` (urllib3's
    ``ProtocolError`` / ``IncompleteRead``) and is transient; ``ContentDecodingError`` (a body
    that arrived whole but does not decode) is not. ``REQUEST_LIMIT_EXCEEDED`` is not: see
    :class:`CrmRequestLimitExceeded`. A failed certificate check is not either.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return not _certificate_problem(error)
    if isinstance(
        error,
        requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError,
    ):
        return True
    if isinstance(error, SalesforceGeneralError):
        return error.status >= 500
    return False


def is_request_limit(error: BaseException) -> bool:
    """Whether ``error`` is the org's API request limit (403 ``REQUEST_LIMIT_EXCEEDED``)."""
    return (
        isinstance(error, SalesforceRefusedRequest)
        and salesforce_error_code(error) == REQUEST_LIMIT_EXCEEDED
    )


def short_cause(error: BaseException) -> str:
    """What went wrong, in a few words and without URLs, session ids or response dumps."""
    if isinstance(error, SalesforceError):
        code = salesforce_error_code(error)
        return f"HTTP {error.status} {code}" if code else f"HTTP {error.status}"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-response (ChunkedEncodingError)"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error (SSLError)"
    if isinstance(error, requests.Timeout):
        return f"no answer in time ({type(error).__name__})"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect ({type(error).__name__})"
    return type(error).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently transient CRM errors (5xx, timeouts, dropped connections) are retried.

    Waits start at ``initial_wait_seconds`` and double up to ``max_wait_seconds``; no attempt
    starts once ``give_up_after_seconds`` have passed since the first (nor, when set, after
    ``max_attempts`` attempts). The defaults ride out an outage of about ten minutes in about
    ten attempts. Tests use milliseconds.
    """

    give_up_after_seconds: float = 600.0
    initial_wait_seconds: float = 2.0
    max_wait_seconds: float = 120.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.give_up_after_seconds < 0:
            raise ValueError("give_up_after_seconds must not be negative")
        if self.initial_wait_seconds <= 0 or self.max_wait_seconds <= 0:
            raise ValueError("retry waits must be positive")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def stop(self) -> stop_base:
        """The tenacity stop condition of this policy."""
        stop: stop_base = stop_before_delay(self.give_up_after_seconds)
        if self.max_attempts is not None:
            stop = stop | stop_after_attempt(self.max_attempts)
        return stop

    def wait(self) -> wait_exponential:
        """The tenacity wait between attempts."""
        return wait_exponential(multiplier=self.initial_wait_seconds, max=self.max_wait_seconds)


@dataclass
class QueryPage:
    """One page of a SOQL query: its records and the size of the whole query."""

    records: list[dict[str, Any]]
    total_size: int


@dataclass
class _CallRecord:
    """What happened to one call across its attempts."""

    attempts: int = 0
    first_failure: datetime | None = None


@dataclass
class CrmClient:
    """Reads from the CRM through simple-salesforce, metering the API calls it spends.

    ``relogin`` (optional) returns a fresh ``Salesforce`` when the session expires; clients
    built from a username and password re-login by themselves inside simple-salesforce.
    ``retries`` counts the attempts that repeated a failed one. ``clock`` gives the "since" of a
    give-up message.

    The meter: ``api_calls`` counts every request the CRM answered through this client's
    session (retries, Bulk API jobs and their polls included; logins, which Salesforce does not
    count as API requests, and requests that never got an answer excluded), and
    ``api_usage`` / ``api_remaining`` hold the org's usage from the latest answer's
    ``Sforce-Limit-Info``. Before each call (and each retry) the client stops with
    ``CrmApiReserveReached`` once that usage leaves ``api_reserve`` or less.
    """

    sf: Salesforce
    relogin: Callable[[], Salesforce] | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    api_reserve: ApiReserve = field(default_factory=lambda: ApiReserve.parse(None))
    api_calls: int = 0
    retries: int = 0
    clock: Callable[[], datetime] = field(default=_utc_now, repr=False)
    _describes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # (used, allowance) from the latest Sforce-Limit-Info the CRM sent.
    _usage: tuple[int, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._meter(self.sf)

    def _meter(self, sf: Salesforce) -> None:
        """Count the answers to every request on ``sf``'s session.

        A response hook on the ``requests.Session`` rather than a count per ``_call`` attempt:
        one simple-salesforce call can be many requests (a Bulk API job is created, uploaded,
        polled and read in one ``bulk2`` call; simple-salesforce repeats a request after its
        own re-login), and every one of them spends the org's allocation. simple-salesforce
        sends all of them through this session, and only records the usage of the plain REST
        calls that succeed (``sf.api_usage``), so the hook reads ``Sforce-Limit-Info`` itself:
        refusals carry it too.
        """
        hooks = sf.session.hooks.setdefault("response", [])
        if self._on_response not in hooks:
            hooks.append(self._on_response)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Runs once the status line and headers are in, before the body is read: an answer
        # cut mid-body was still served (and counted) by the CRM.
        request = response.request
        if request is not None and _LOGIN_PATH.match(urlsplit(request.url or "").path):
            return
        self.api_calls += 1
        limit_info = response.headers.get("Sforce-Limit-Info")
        if limit_info:
            usage = Salesforce.parse_api_usage(limit_info).get("api-usage")
            if usage is not None:
                self._usage = (usage.used, usage.total)

    def _check_reserve(self) -> None:
        """Stop before a call once the last reported usage leaves the reserve or less."""
        if self._usage is None:
            return
        used, allowance = self._usage
        reserve = self.api_reserve.calls_of(allowance)
        if reserve > 0 and allowance - used <= reserve:
            raise CrmApiReserveReached(used, allowance, self.api_reserve)

    def _call(self, operation: Callable[[Salesforce], Any], *, idempotent: bool = True) -> Any:
        record = _CallRecord()

        def worth_retrying(error: BaseException) -> bool:
            if not is_transient(error):
                return False
            # Repeating a create whose answer got lost could create the records twice.
            return idempotent or not _sent_but_unanswered(error)

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.retries += 1
            logger.warning(
                "CRM call failed (%s); attempt %d in %.1f s",
                short_cause(error) if error else "unknown error",
                state.attempt_number + 1,
                wait,
            )

        def attempt() -> Any:
            # Not a transient error: raised out of the retries at once.
            self._check_reserve()
            record.attempts += 1
            try:
                return self._once(operation)
            except Exception:
                if record.first_failure is None:
                    record.first_failure = self.clock()
                raise

        retrying = Retrying(
            retry=retry_if_exception(worth_retrying),
            stop=self.retry_policy.stop(),
            wait=self.retry_policy.wait(),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except SalesforceRefusedRequest as error:
            if is_request_limit(error):
                # ``from None``: the library's error text holds the full request URL.
                raise CrmRequestLimitExceeded(self.api_usage) from None
            raise
        except (SalesforceGeneralError, requests.RequestException) as error:
            if isinstance(error, SalesforceGeneralError) and not is_transient(error):
                raise
            raise self._unavailable(error, record, idempotent) from None

    def _once(self, operation: Callable[[Salesforce], Any]) -> Any:
        """One attempt; an expired session logs in once and repeats it."""
        try:
            return operation(self.sf)
        except SalesforceExpiredSession:
            if self.relogin is None:
                raise
            # One fresh login, then the call once more; a second 401 is a real error.
            self.sf = self.relogin()
            self._meter(self.sf)
            return operation(self.sf)

    def _unavailable(
        self, error: BaseException, record: _CallRecord, idempotent: bool
    ) -> CrmUnavailable:
        """The one-line error a call ends with once a transport or 5xx failure is final."""
        cause = short_cause(error)
        if isinstance(error, requests.RequestException):
            # The host (and port) only: full URLs carry the query, and nothing here is secret.
            cause = f"{cause} at {self.sf.sf_instance}"
        if isinstance(error, requests.exceptions.SSLError) and _certificate_problem(error):
            return CrmUnavailable(
                f"the CRM at {self.sf.sf_instance} failed the TLS certificate check; check the "
                "instance URL (and, for the sandbox, its CA certificate)"
            )
        if not idempotent and _sent_but_unanswered(error):
            return CrmUnavailable(
                f"CRM answer lost ({cause}); the call was not repeated because it may have been "
                "applied: check the CRM before running it again"
            )
        since = record.first_failure or self.clock()
        return CrmRetriesExhausted(since, record.attempts, cause)

    def call(self, operation: Callable[[Salesforce], Any], *, idempotent: bool = True) -> Any:
        """Any simple-salesforce call, with the client's retries and API-call accounting.

        Pass ``idempotent=False`` for calls that must not run twice (creates): a request whose
        answer was lost on the way back (dropped mid-response, read timeout) is then not
        repeated. Errors: ``CrmRetriesExhausted`` once transient failures outlast the retry
        policy, ``CrmRequestLimitExceeded`` at once for the org's API limit, simple-salesforce's
        own exception for any other error answer.
        """
        return self._call(operation, idempotent=idempotent)

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

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Iterator[QueryPage]:
        """Run a SOQL query and yield its pages (up to 2,000 records each) as they arrive.

        Each page is fetched (and retried) on its own, so memory holds one page at a time.
        ``batch_size`` (200..2,000) asks for smaller pages (``Sforce-Query-Options``); the CRM
        may answer with other sizes.
        """
        options: dict[str, Any] = {}
        if batch_size is not None:
            options["headers"] = {"Sforce-Query-Options": f"batchSize={batch_size}"}
        result = self._call(lambda sf: sf.query(soql, include_deleted=include_deleted, **options))
        total = int(result.get("totalSize", 0))
        while True:
            yield QueryPage(records=result.get("records", []), total_size=total)
            if result.get("done", True):
                return
            next_url = result["nextRecordsUrl"]
            result = self._call(
                lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True, **options)
            )

    @property
    def api_usage(self) -> str | None:
        """The org's API usage as last reported (``Sforce-Limit-Info``), e.g. ``"120/100000"``;
        ``None`` before the CRM reported any."""
        return f"{self._usage[0]}/{self._usage[1]}" if self._usage else None

    @property
    def api_remaining(self) -> int | None:
        """The org's daily API calls left as last reported (allowance minus usage)."""
        return self._usage[1] - self._usage[0] if self._usage else None


def describe_error(error: SalesforceError) -> str:
    """A one-line explanation of a Salesforce error body (``[{"message", "errorCode"}]``)."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', 'ERROR')}: {first.get('message', '')}"
    return f"HTTP {error.status}: {content}"
