"""The mapping resource: the validated mapping from ``mapping_config/``, one version per run."""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource, Failure, RunsFilter
from dagster._core.errors import DagsterInvalidPropertyError
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from pydantic import Field
from sqlalchemy import Engine, Row, inspect, select

from acton_pipelines import settings
from acton_pipelines.mapping import MappingError, load_mapping
from acton_pipelines.mapping.config_files import (
    CONTACT_MAPPING_FILE,
    SCORE_SHEETS_FILE,
    SEGMENTS_FILE,
)
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.schema import prepare_warehouse
from acton_pipelines.warehouse.staged_load import drop_abandoned_stages, upsert_records
from acton_pipelines.warehouse.sync_runs import utc_now
from acton_pipelines.warehouse.tables import mapping_versions, run_mappings

MAPPING_FILES = (CONTACT_MAPPING_FILE, SCORE_SHEETS_FILE, SEGMENTS_FILE)
# The run tag naming the mapping version a run uses (the first 12 hex digits of its hash).
MAPPING_VERSION_TAG = "acton/mapping_version"


@dataclass(frozen=True)
class MappingVersion:
    """The mapping files exactly as read, and the hash that names them."""

    files: dict[str, str]
    source_dir: str

    @property
    def mapping_hash(self) -> str:
        text = json.dumps(self.files, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def read(cls, directory: Path) -> MappingVersion:
        """The mapping files of ``directory`` (those present; the loader names missing ones)."""
        files = {}
        for name in MAPPING_FILES:
            path = directory / name
            if path.is_file():
                files[name] = path.read_bytes().decode("utf-8", errors="surrogateescape")
        return cls(files=files, source_dir=str(directory))

    def load(self) -> Mapping:
        """Validate and load these files (messages name the files and lines as on disk)."""
        source = Path(self.source_dir)
        if not self.files and not source.is_dir():
            return load_mapping(source)  # says the folder does not exist
        with tempfile.TemporaryDirectory(prefix="acton-mapping-") as folder:
            for name, text in self.files.items():
                (Path(folder) / name).write_bytes(text.encode("utf-8", errors="surrogateescape"))
            try:
                mapping = load_mapping(Path(folder))
            except MappingError as error:
                raise MappingError(error.problems, source=self.source_dir) from None
        return mapping.model_copy(update={"source_dir": self.source_dir})


def adopt_run_mapping(engine: Engine, run_id: str, directory: Path) -> tuple[str, Mapping, bool]:
    """The mapping run ``run_id`` uses: the version recorded for it, or, at its first step, the
    files now in ``directory``, validated and recorded (then the warehouse gets the tables and
    columns that version needs). Returns its hash, the mapping and whether it was adopted now.

    Every step of the run (in this process or another) gets the same version, so an edit made
    while a run is in flight never mixes two mappings in one run.
    """
    recorded = _recorded_version(engine, run_id)
    if recorded is not None:
        mapping = _loaded(recorded.mapping_hash, recorded.files, recorded.source_dir)
        return recorded.mapping_hash, mapping, False
    version = MappingVersion.read(directory)
    mapping = version.load()
    prepare_warehouse(engine, mapping)
    now = utc_now()
    with engine.begin() as conn:
        upsert_records(
            conn,
            mapping_versions,
            [
                {
                    "mapping_hash": version.mapping_hash,
                    "files": json.dumps(version.files, sort_keys=True),
                    "source_dir": version.source_dir,
                    "first_run_id": run_id,
                    "created_at": now,
                }
            ],
            ["mapping_hash"],
            update=False,
        )
        upsert_records(
            conn,
            run_mappings,
            [{"run_id": run_id, "mapping_hash": version.mapping_hash, "adopted_at": now}],
            ["run_id"],
            update=False,
        )
        # A parallel step of the same run may have recorded its version first: use that one.
        taken = conn.execute(
            select(run_mappings.c.mapping_hash).where(run_mappings.c.run_id == run_id)
        ).scalar_one()
    if taken != version.mapping_hash:
        return adopt_run_mapping(engine, run_id, directory)
    return taken, mapping, True


@functools.lru_cache(maxsize=8)
def _loaded(mapping_hash: str, files: str, source_dir: str) -> Mapping:
    """A recorded version, loaded once per process: every step and check of a run asks for
    it, and a version never changes (its hash names its files)."""
    return MappingVersion(files=json.loads(files), source_dir=source_dir).load()


def _recorded_version(engine: Engine, run_id: str) -> Row | None:
    """The files, folder and hash of the version recorded for ``run_id``, if any."""
    if not {mapping_versions.name, run_mappings.name} <= set(inspect(engine).get_table_names()):
        return None
    statement = (
        select(mapping_versions.c.files, mapping_versions.c.source_dir, run_mappings.c.mapping_hash)
        .join(run_mappings, run_mappings.c.mapping_hash == mapping_versions.c.mapping_hash)
        .where(run_mappings.c.run_id == run_id)
    )
    with engine.connect() as conn:
        return conn.execute(statement).first()


class MappingResource(ConfigurableResource):
    """The field mapping, score sheets and segment rules (``ACTON_MAPPING_DIR``, default
    ``mapping_config/``). Loading validates it; a bad mapping fails with one message per
    problem, naming the file, the entry and the fix. A run reads it once, at its first step,
    and every later step of the run uses that same version (kept in the warehouse's
    ``mapping_versions``; the run carries the tag ``acton/mapping_version``)."""

    directory: str | None = Field(
        default=None,
        description="Mapping folder; empty means ACTON_MAPPING_DIR or mapping_config/.",
    )

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory else settings.mapping_dir()

    def load(self) -> Mapping:
        """The mapping as it is on disk now (for sensors and the command line)."""
        return load_mapping(self.path)

    def _load_or_fail(self) -> Mapping:
        try:
            return self.load()
        except MappingError as error:
            raise Failure(description=str(error)) from None

    def load_for_run(self, context: object, engine: Engine) -> Mapping:
        """The run's mapping version (see ``adopt_run_mapping``), or a run failure listing
        every problem (file, line, entry, fix). ``context`` is the step's or check's context."""
        try:
            run_id: str = context.run.run_id  # type: ignore[attr-defined]
        except DagsterInvalidPropertyError:
            # Invoked directly (a test calling a check), outside any run: read it from disk.
            return self._load_or_fail()
        try:
            mapping_hash, mapping, adopted = adopt_run_mapping(engine, run_id, self.path)
        except MappingError as error:
            raise Failure(description=str(error)) from None
        if adopted:
            _start_of_run(context, engine, mapping_hash, self.path)
        return mapping


def _start_of_run(context: object, engine: Engine, mapping_hash: str, path: Path) -> None:
    """What the first step of a run does once the run has its mapping: label the run with the
    mapping version, and drop the staging tables of runs that were killed mid-load."""
    instance = context.instance  # type: ignore[attr-defined]
    run_id: str = context.run.run_id  # type: ignore[attr-defined]
    instance.add_run_tags(run_id, {MAPPING_VERSION_TAG: mapping_hash[:12]})
    context.log.info(  # type: ignore[attr-defined]
        f"This run uses mapping version {mapping_hash[:12]} from {path}."
    )
    live = instance.get_run_ids(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
    dropped = drop_abandoned_stages(engine, [run_id, *live])
    if dropped:
        context.log.info(  # type: ignore[attr-defined]
            f"Dropped {len(dropped)} staging table(s) left by runs that no longer run: "
            f"{', '.join(dropped)}"
        )
