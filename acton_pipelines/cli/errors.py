"""Turning the errors a user can act on into one clear message and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from acton_pipelines.build.contact_candidates import MirrorMissing
from acton_pipelines.crm.client import CrmUnavailable
from acton_pipelines.mapping import MappingError

F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS = (CrmUnavailable, MappingError, MirrorMissing, FileNotFoundError)


def friendly_errors(command: F) -> F:
    """Print known errors as ``Error: ...`` without a traceback and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:
            raise click.ClickException(str(error)) from None

    return wrapper  # type: ignore[return-value]
