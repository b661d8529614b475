"""Step failures a user can act on: one line on the run page, the trace kept in the run log.

Every asset body runs inside ``one_line_failure``: whatever stops it becomes a Dagster
``Failure`` whose description is one line naming the step and the cause (the CRM unreachable,
the login refused, a table missing, a mass deletion refused, ...). The original exception stays
attached as the cause, so the full trace is still in the run's log for whoever debugs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dagster import Failure
from sqlalchemy.exc import DBAPIError

from acton_pipelines.build.contact_candidates import MirrorMissing
from acton_pipelines.crm.client import CrmUnavailable
from acton_pipelines.crm.mass_delete import MassDeleteRefused
from acton_pipelines.mapping import MappingError
from acton_pipelines.warehouse.sync_runs import one_line

# Errors whose message already says what is wrong and how to fix it.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CrmUnavailable,
    MappingError,
    MirrorMissing,
    MassDeleteRefused,
    FileNotFoundError,
)


def failure_cause(error: BaseException) -> str:
    """One line saying why a step failed."""
    if isinstance(error, USER_ERRORS):
        return one_line(error)
    if isinstance(error, DBAPIError):
        return f"warehouse error ({type(error.orig).__name__}): {one_line(error.orig)}"
    return f"{type(error).__name__}: {one_line(error)}"


@contextlib.contextmanager
def one_line_failure() -> Iterator[None]:
    """Turn any error raised inside into a ``Failure`` described in one line (the run page
    and ``run_failures`` already name the step)."""
    try:
        yield
    except Failure:
        raise
    except Exception as error:
        raise Failure(description=failure_cause(error)) from error
