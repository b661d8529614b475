"""Turning the errors a user can act on into one clear message and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from acton_pipelines.runs.step_failures import USER_ERRORS

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Print known errors as ``Error: ...`` without a traceback and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:
            raise click.ClickException(str(error)) from None

    return wrapper  # type: ignore[return-value]
