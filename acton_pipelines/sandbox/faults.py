"""Fault injection: make the next N matching requests fail the way Salesforce can fail.

Tests use it to exercise retries, re-login and limit handling without waiting for the real
thing: ``server.inject_fault(path_contains="/query", status=503,
error_code="SERVER_UNAVAILABLE", times=2)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

_DEFAULT_MESSAGES = {
    "SERVER_UNAVAILABLE": "Server temporarily unavailable. Please try again later.",
    "INVALID_SESSION_ID": "Session expired or invalid",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "QUERY_TIMEOUT": "Your query request was running for too long.",
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record",
}


@dataclass
class Fault:
    """One armed fault and how many more requests it will answer."""

    path_contains: str
    status: int
    error_code: str
    message: str
    remaining: int
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with ``method`` and ``path`` triggers this fault."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains in path


class FaultInjector:
    """The armed faults of one server; safe to arm from the test thread while it serves."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        *,
        path_contains: str,
        status: int,
        error_code: str,
        message: str | None = None,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with an error.

        ``method`` restricts the fault to one HTTP method. Faults are consumed in the order
        they were armed.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        fault = Fault(
            path_contains=path_contains,
            status=status,
            error_code=error_code,
            message=message or _DEFAULT_MESSAGES.get(error_code, error_code),
            remaining=times,
            method=method,
        )
        with self._lock:
            self._faults.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching the request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        """How many faulty answers are still armed."""
        with self._lock:
            return sum(f.remaining for f in self._faults)
