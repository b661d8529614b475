"""The mapping resource: the validated mapping from ``mapping_config/``."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, Failure
from pydantic import Field

from acton_pipelines import settings
from acton_pipelines.mapping import MappingError, load_mapping
from acton_pipelines.mapping.models import Mapping


class MappingResource(ConfigurableResource):
    """The field mapping, score sheets and segment rules (``ACTON_MAPPING_DIR``, default
    ``mapping_config/``). Loading validates it; a bad mapping fails with one message per
    problem, naming the file, the entry and the fix."""

    directory: str | None = Field(
        default=None,
        description="Mapping folder; empty means ACTON_MAPPING_DIR or mapping_config/.",
    )

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory else settings.mapping_dir()

    def load(self) -> Mapping:
        return load_mapping(self.path)

    def load_for_run(self) -> Mapping:
        """The mapping, or a run failure listing every problem (file, line, entry, fix)."""
        try:
            return self.load()
        except MappingError as error:
            raise Failure(description=str(error)) from None
