"""The warehouse resource: where Act-On Contacts and its satellite tables live."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy import Engine

from acton_pipelines import settings
from acton_pipelines.warehouse.engine import display_url, warehouse_engine


class WarehouseResource(ConfigurableResource):
    """The SQL warehouse analysts query (SQLite file by default, PostgreSQL in production).

    Set ``ACTON_WAREHOUSE_URL`` (a SQLAlchemy URL such as
    ``postgresql+psycopg://user:password@host/db``); unset, a SQLite file under ``ACTON_HOME``.
    """

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means ACTON_WAREHOUSE_URL or the SQLite default.",
    )

    @property
    def resolved_url(self) -> str:
        return self.url or settings.warehouse_url()

    @property
    def engine(self) -> Engine:
        return warehouse_engine(self.resolved_url)

    @property
    def display_url(self) -> str:
        """The URL with its password masked: the only form that may reach logs or metadata."""
        return display_url(self.resolved_url)
