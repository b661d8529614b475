"""What made a run fail, in one line per failed step and one line for the whole run.

Dagster keeps a failed step's whole story (wrapping errors, stack traces, chained causes); a
person paged at night, a ``run_failures`` row or a webhook message needs the one sentence that
says what went wrong: a ``dagster.Failure``'s description (the project words those for people),
else the innermost error's message. Never a stack trace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import DagsterEventType, DagsterInstance
from dagster._core.events import JobFailureData
from dagster._core.execution.plan.objects import StepFailureData
from dagster._utils.error import SerializableErrorInfo

from acton_pipelines.errors import one_line

# The run summary names at most this many distinct causes, then counts the rest.
MAX_SUMMARY_CAUSES = 3

# A class path Python prints before an error message (``dagster._core.errors.X: ...``).
_QUALIFIED_CLASS = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)+(?P<name>[A-Za-z_][A-Za-z0-9_]*): ")


@dataclass(frozen=True)
class StepCause:
    """Why one step failed, in one line; ``step_key`` is None for a run that failed before or
    outside its steps (a crashed run worker, a run that could not start)."""

    step_key: str | None
    cause: str


def error_cause(error: SerializableErrorInfo | None) -> str:
    """The innermost error of ``error``'s explicit cause chain (``raise ... from ...``), as one
    line: Dagster wraps a step's exception in its own ("Error occurred while executing op"), and
    the original problem is at the bottom of the chain."""
    if error is None:
        return "failed (no error recorded)"
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    # Python's "module.path.ClassName: message" becomes "ClassName: message".
    message = _QUALIFIED_CLASS.sub(r"\g<name>: ", message)
    if not message or message == f"{error.cls_name}: None":
        return f"{error.cls_name or 'error'} (no message)"
    return one_line(message)


def step_failure_cause(data: StepFailureData, step_key: str | None = None) -> str:
    """One line saying why a step failed: its ``Failure``'s description when it has one (first
    line), else the innermost error's message (first line).

    With ``step_key``, a leading ``"<step_key>: "`` is dropped: the project's assets already
    name themselves in their failures (``step_failures.one_line_failure``), and a caller that
    prints ``step: cause`` would otherwise say the step's name twice.
    """
    user_failure = data.user_failure_data
    if user_failure is not None and user_failure.description and user_failure.description.strip():
        cause = one_line(user_failure.description)
    else:
        cause = error_cause(data.error)
    prefix = f"{step_key}: " if step_key else None
    if prefix and cause.startswith(prefix) and len(cause) > len(prefix):
        cause = cause[len(prefix) :]
    return cause


def failure_causes(instance: DagsterInstance, run_id: str) -> list[StepCause]:
    """Why run ``run_id`` failed: one ``StepCause`` per failed step, in the order they failed.

    A run with no failed step (it failed before any step started, or its worker died) gets one
    cause from its RUN_FAILURE event; a run that has not failed gets none.
    """
    step_records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records
    causes = []
    for record in step_records:
        event = record.event_log_entry.dagster_event
        if event is None or not isinstance(event.event_specific_data, StepFailureData):
            continue
        data = event.event_specific_data
        causes.append(StepCause(event.step_key, step_failure_cause(data, event.step_key)))
    if causes:
        return causes
    run_records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    if not run_records:
        return []
    event = run_records[0].event_log_entry.dagster_event
    if event is None:
        return []
    data = event.event_specific_data
    if isinstance(data, JobFailureData) and data.error is not None:
        return [StepCause(None, error_cause(data.error))]
    return [StepCause(None, one_line(event.message or "") or "failed (no message recorded)")]


def run_failure_summary(causes: Sequence[StepCause]) -> str:
    """One line for the whole run: ``step: cause``, steps sharing a cause grouped
    (``crm_leads, crm_contacts: CRM unavailable ...``), at most ``MAX_SUMMARY_CAUSES`` causes
    then a count of the others."""
    if not causes:
        return "failed (no failure recorded)"
    grouped: dict[str, list[str]] = {}
    for cause in causes:
        steps = grouped.setdefault(cause.cause, [])
        if cause.step_key and cause.step_key not in steps:
            steps.append(cause.step_key)
    parts = [f"{', '.join(steps)}: {cause}" if steps else cause for cause, steps in grouped.items()]
    shown = parts[:MAX_SUMMARY_CAUSES]
    if len(parts) > MAX_SUMMARY_CAUSES:
        shown.append(f"(+{len(parts) - MAX_SUMMARY_CAUSES} more)")
    return "; ".join(shown)


def run_failed_at(instance: DagsterInstance, run_id: str) -> datetime | None:
    """When run ``run_id`` failed (its RUN_FAILURE event, UTC), or None if it has not."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    if not records:
        return None
    return datetime.fromtimestamp(records[0].timestamp, tz=UTC)
