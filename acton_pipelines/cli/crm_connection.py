"""The CRM for command-line use, configured like the Dagster resource."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.resource import crm_resource_from_env


@contextlib.contextmanager
def connected_crm() -> Iterator[CrmClient]:
    """A client for the CRM that ``ACTON_CRM_MODE`` names (the sandbox by default)."""
    with crm_resource_from_env(as_env_vars=False).connect() as client:
        yield client
