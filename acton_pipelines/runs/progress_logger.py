"""The run log as the ``acton`` command line prints it: progress lines, no stack traces.

Dagster's console logger prints every event, and a failure's whole stack trace (hundreds of
lines for one cause). In a terminal a data engineer wants the steps' own progress messages and,
at the end, one line per failure; the full trace stays in the run's event log (the Dagster UI),
and ``--verbose`` switches back to Dagster's console logger.
"""

from __future__ import annotations

import logging
import sys

from dagster import InitLoggerContext, logger

# Dagster's own events worth a line in a terminal; failures are summarised after the run.
# How the engine words a skip before the STEP_SKIPPED event itself.
_ENGINE_SKIP_NOTE = "Dependencies for step"
_SHOWN_EVENTS = {"STEP_SUCCESS": "done", "STEP_SKIPPED": "skipped (an upstream step failed)"}


class ProgressHandler(logging.Handler):
    """Writes a step's own log messages and its start/finish, one line each, to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if not meta:
            return
        event = meta.get("dagster_event")
        step = meta.get("step_key") or "run"
        if event is None:
            message = str(meta.get("orig_message", ""))
            if message.startswith(_ENGINE_SKIP_NOTE):
                return  # the STEP_SKIPPED event that follows says it in fewer words
            # Most steps already start their messages with what they work on.
            line = f"  {message}" if message.startswith(f"{step}:") else f"  {step}: {message}"
        else:
            shown = _SHOWN_EVENTS.get(event.event_type_value)
            if shown is None:
                return
            line = f"  {step}: {shown}"
        sys.stderr.write(line.splitlines()[0] + "\n")


@logger(
    config_schema={},
    description=(
        "Progress for the acton command line: each step's own messages and its outcome, one "
        "line each, without Dagster's event dump or stack traces (those stay in the run log)."
    ),
)
def acton_cli_logger(init_context: InitLoggerContext) -> logging.Logger:
    progress = logging.Logger("acton_cli", level=logging.INFO)
    progress.addHandler(ProgressHandler())
    return progress
