"""Fault injection: make matching requests fail the way Salesforce (or the network) can fail.

Two kinds of fault, each armed for a path fragment (and optionally one HTTP method):

- an **error answer**: the request gets a Salesforce error body with the given status and
  errorCode, e.g. ``server.inject_fault(path_contains="/query", status=503,
  error_code="SERVER_UNAVAILABLE", times=2)``. It is answered before the session check and the
  API usage count, like a load balancer or Salesforce's own gate would.
- a **dropped connection**: the request is served and counted as usual, but the connection is
  closed after the status line, the headers and part of the body
  (``server.drop_connections(path_contains="/query", times=1)``). The headers promise more
  body than is sent (a ``Content-Length`` larger than what arrives, or an unfinished chunked
  body), so ``requests`` raises ``ChunkedEncodingError``.

  This is how to lose a response *after the write was committed*: the handler runs and commits
  its transaction before the first byte of the answer is sent, and only the answer is cut. So
  ``server.drop_connections(path_contains="/composite/sobjects/Lead/", method="PATCH")`` lets
  the next collections upsert of Leads create (or update) its records while the client sees
  ``ChunkedEncodingError`` (a ``requests.RequestException``, not a ``ConnectionError``), and
  ``path_contains="/sobjects/Lead/ActOn_Contact_Id__c/"`` does the same to a single-record
  upsert; ``method="POST"`` with ``"/composite/sobjects"`` to a collections create. Only an
  answer with a body can be cut: a 204 (an update, or an upsert's update before API 46.0)
  goes out whole.

A third kind is not an HTTP answer but a job outcome: a **failed query job**
(``server.fail_query_jobs(sobject="Lead", times=1)``). The next Bulk API 2.0 query job (on that
object) to finish ends ``Failed`` with an ``errorMessage`` instead of ``JobComplete``, the way an
org reports a query that timed out or broke while it ran: every request about the job is
answered normally, only the job's state says it failed.

Every kind fires for "the next ``times`` matching requests" (jobs), or, with ``probability=p``,
for a share ``p`` of them drawn from a ``random.Random(seed)``: the same requests in the same
order meet the same faults, so tests stay deterministic.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

_DEFAULT_MESSAGES = {
    "SERVER_UNAVAILABLE": "Server temporarily unavailable. Please try again later.",
    "INVALID_SESSION_ID": "Session expired or invalid",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "QUERY_TIMEOUT": "Your query request was running for too long.",
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record",
}
# The errorMessage of a query job failed on purpose: a query that outran its time, as an org
# reports it after its own retries.
DEFAULT_QUERY_JOB_FAILURE = (
    "InternalServerError : Failed to process query: QUERY_TIMEOUT: Your query request was "
    "running for too long."
)


class FaultKind(StrEnum):
    """What an armed fault does to the request it fires on."""

    ERROR = "error"
    DROP = "drop"
    # Not an answer to a request: the query job it fires on ends Failed.
    FAILED_QUERY_JOB = "failed_query_job"


@dataclass
class Fault:
    """One armed fault: which requests it hits, what it does, and how often.

    ``remaining`` is how many more requests it fires on (``None``: until cleared). With a
    ``probability`` below 1 it fires on each matching request with that chance, drawn from
    ``rng``.
    """

    kind: FaultKind
    path_contains: str
    remaining: int | None
    method: str | None = None
    status: int = 0
    error_code: str = ""
    message: str = ""
    probability: float = 1.0
    rng: random.Random | None = None
    chunked: bool = False
    # For a failed query job: the object its jobs query (lower case; None: any object).
    sobject: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with ``method`` and ``path`` is one this fault targets."""
        if self.kind is FaultKind.FAILED_QUERY_JOB:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains in path

    def fires(self) -> bool:
        """Whether it fires on a matching request (one draw of its RNG when probabilistic)."""
        if self.rng is None:
            return True
        return self.rng.random() < self.probability


def _how_often(
    times: int | None, probability: float | None, seed: int
) -> tuple[int | None, float, random.Random | None]:
    """``(remaining, probability, rng)`` of a fault armed with ``times`` and ``probability``."""
    if times is not None and times < 1:
        raise ValueError("times must be at least 1")
    if probability is None:
        return (1 if times is None else times), 1.0, None
    if not 0.0 < probability <= 1.0:
        raise ValueError("probability must be in (0, 1]")
    # Without ``times`` a probabilistic fault stays armed until cleared.
    return times, probability, random.Random(seed)


class FaultInjector:
    """The armed faults of one server; safe to arm from the test thread while it serves."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._served: Counter[FaultKind] = Counter()
        self._lock = threading.Lock()

    def inject(
        self,
        *,
        path_contains: str,
        status: int,
        error_code: str,
        message: str | None = None,
        times: int | None = None,
        method: str | None = None,
        probability: float | None = None,
        seed: int = 0,
    ) -> None:
        """Answer requests whose path contains ``path_contains`` with a Salesforce error.

        By default the next request (``times`` requests); with ``probability`` a share of them
        drawn from ``random.Random(seed)`` (until cleared, or ``times`` hits). ``method``
        restricts the fault to one HTTP method. Faults are tried in the order they were armed.
        """
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        remaining, chance, rng = _how_often(times, probability, seed)
        self._arm(
            Fault(
                kind=FaultKind.ERROR,
                path_contains=path_contains,
                remaining=remaining,
                method=method,
                status=status,
                error_code=error_code,
                message=message or _DEFAULT_MESSAGES.get(error_code, error_code),
                probability=chance,
                rng=rng,
            )
        )

    def drop(
        self,
        *,
        path_contains: str,
        times: int | None = None,
        method: str | None = None,
        probability: float | None = None,
        seed: int = 0,
        chunked: bool = False,
    ) -> None:
        """Cut the responses to requests whose path contains ``path_contains`` mid-body.

        Which requests: as :meth:`inject`. ``chunked`` sends the cut body with chunked
        transfer encoding instead of a ``Content-Length`` larger than what is sent.
        """
        remaining, chance, rng = _how_often(times, probability, seed)
        self._arm(
            Fault(
                kind=FaultKind.DROP,
                path_contains=path_contains,
                remaining=remaining,
                method=method,
                probability=chance,
                rng=rng,
                chunked=chunked,
            )
        )

    def fail_query_jobs(
        self,
        *,
        sobject: str | None = None,
        message: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        seed: int = 0,
    ) -> None:
        """Make Bulk API 2.0 query jobs end ``Failed`` (with ``message`` as their
        ``errorMessage``) instead of ``JobComplete``.

        Which jobs: the next one to finish (``times`` ones), or with ``probability`` a share of
        them drawn from ``random.Random(seed)``; ``sobject`` restricts it to jobs querying that
        object (any case). Jobs are matched when they finish, in the order they finish.
        """
        remaining, chance, rng = _how_often(times, probability, seed)
        self._arm(
            Fault(
                kind=FaultKind.FAILED_QUERY_JOB,
                path_contains="",
                sobject=sobject.lower() if sobject else None,
                remaining=remaining,
                message=message or DEFAULT_QUERY_JOB_FAILURE,
                probability=chance,
                rng=rng,
            )
        )

    def take_query_job_failure(self, sobject: str) -> str | None:
        """The errorMessage a query job on ``sobject`` finishing now fails with, if an armed
        failure fires on it (consuming one of its uses); None: the job completes."""
        with self._lock:
            for fault in self._faults:
                if fault.kind is not FaultKind.FAILED_QUERY_JOB:
                    continue
                if fault.sobject not in (None, sobject.lower()) or not fault.fires():
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                self._served[FaultKind.FAILED_QUERY_JOB] += 1
                return fault.message
        return None

    def _arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault that fires on the request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path) or not fault.fires():
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                if fault.kind is FaultKind.ERROR:
                    self._served[FaultKind.ERROR] += 1
                return fault
        return None

    def count_drop(self) -> None:
        """Count one response actually cut (the app calls it once the cut is sent)."""
        with self._lock:
            self._served[FaultKind.DROP] += 1

    def clear(self) -> None:
        """Disarm every fault (the served counts stay)."""
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        """How many more requests (query jobs, for failed-job faults) the armed faults with a
        ``times`` limit will hit.

        A probabilistic fault without ``times`` has no such limit and is not counted.
        """
        with self._lock:
            return sum(f.remaining for f in self._faults if f.remaining is not None)

    @property
    def errors_served(self) -> int:
        """How many requests got an injected error answer."""
        with self._lock:
            return self._served[FaultKind.ERROR]

    @property
    def connections_dropped(self) -> int:
        """How many responses were cut mid-body."""
        with self._lock:
            return self._served[FaultKind.DROP]

    @property
    def query_jobs_failed(self) -> int:
        """How many query jobs ended Failed on purpose."""
        with self._lock:
            return self._served[FaultKind.FAILED_QUERY_JOB]
