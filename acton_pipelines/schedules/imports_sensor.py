"""A run of ``acton_imports`` when new files appear in the imports folder.

The sensor runs every 30 s, so it must stay cheap whatever the folder holds: a file is read (to
hash it) only when its name is new or its size or modification time changed since the last
evaluation; otherwise its sha256 is taken from the cursor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from acton_pipelines import settings
from acton_pipelines.imports import files
from acton_pipelines.jobs import acton_imports_job


@dataclass(frozen=True)
class SeenFile:
    """What the cursor remembers of one file: its size and modification time (ns), which say
    whether it changed, and the sha256 its content had then."""

    size: int
    mtime_ns: int
    sha256: str

    def to_json(self) -> list[int | str]:
        return [self.size, self.mtime_ns, self.sha256]


@dataclass(frozen=True)
class FolderState:
    """The cursor: per file name in the folder at the last evaluation, a ``SeenFile``; and the
    sha256s already requested (those of the remembered files)."""

    files: dict[str, SeenFile]

    @property
    def requested(self) -> set[str]:
        return {seen.sha256 for seen in self.files.values()}

    def to_cursor(self) -> str:
        """The cursor text: ``{"<name>": [size, mtime_ns, sha256], ...}``."""
        data = {name: seen.to_json() for name, seen in self.files.items()}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def read_cursor(cursor: str | None) -> FolderState:
    """The state saved in ``cursor``; an unreadable cursor (reset by hand, say) counts as none:
    every file is hashed again, and the asset skips files it has already imported. Entries that
    are not ``[size, mtime_ns, sha256]`` are dropped (their files are hashed again)."""
    try:
        data = json.loads(cursor or "{}")
    except ValueError:
        return FolderState({})
    if not isinstance(data, dict):
        return FolderState({})
    remembered = {}
    for name, entry in data.items():
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) for n in entry[:2])
            and isinstance(entry[2], str)
        ):
            remembered[name] = SeenFile(entry[0], entry[1], entry[2])
    return FolderState(remembered)


def requested_hashes(cursor: str | None) -> set[str]:
    """The sha256s of the files already requested, as saved in ``cursor``."""
    return read_cursor(cursor).requested


def imports_run_key(hashes: set[str]) -> str:
    """One run per set of new files: the sha256 of their sorted sha256s."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def scan_folder(folder: Path, before: FolderState) -> tuple[FolderState, list[str]]:
    """The files of ``folder`` now (as ``files.import_paths`` lists them): a file whose name,
    size and modification time match ``before`` keeps its sha256 unread; any other is hashed.
    Also returns a message per file that could not be read.

    A file gone between the listing and its reading (an import run moved it) is left out. So
    is a file that cannot be read (permissions): one such file must not stop the others; it is
    not remembered, so it is read again, and requested, once it can be.
    """
    now: dict[str, SeenFile] = {}
    unreadable: list[str] = []
    for path in files.import_paths(folder):
        try:
            stat = path.stat()
            seen = before.files.get(path.name)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                seen = SeenFile(stat.st_size, stat.st_mtime_ns, files.sha256_of(path))
        except FileNotFoundError:
            continue
        except OSError as error:
            unreadable.append(
                f"Cannot read {path} ({error.strerror or error}): it is left out until it can "
                "be; give the Dagster daemon's user read access to it."
            )
            continue
        now[path.name] = seen
    return FolderState(now), unreadable


@sensor(
    job=acton_imports_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the imports folder (ACTON_IMPORTS_DIR, default ACTON_HOME/imports): when files "
        "appear whose contents (sha256) it has not requested yet, requests one run of "
        "acton_imports, keyed by their sha256s and newest modification time. Only new files, "
        "and files whose size or modification time changed, are read: the cursor remembers "
        "[size, mtime_ns, sha256] "
        "per file name in the folder. Hidden files and sub-folders (processed/, rejected/) are "
        "ignored; a renamed copy of content already requested requests nothing."
    ),
)
def imports_sensor(context: SensorEvaluationContext) -> SensorResult:
    """Request one ``import_files`` run for the folder's new contents."""
    folder = settings.imports_dir()
    before = read_cursor(context.cursor)
    now, unreadable = scan_folder(folder, before)
    for message in unreadable:
        context.log.warning(message)
    new = now.requested - before.requested
    # Only the folder's files are remembered: the cursor stays as small as the folder, and
    # files the run moved to processed/ or rejected/ drop out of it.
    cursor = now.to_cursor()
    if not new:
        return SensorResult(skip_reason=f"No new files in {folder}.", cursor=cursor)
    context.log.info(f"{len(new)} new file(s) in {folder}: requesting acton_imports.")
    # Dagster launches a run key once per sensor. The newest modification time among the new
    # files makes a drop of content seen before (its first copy since moved to processed/) a
    # new request: its run finds the content imported and moves the file out of the way.
    newest = max(seen.mtime_ns for seen in now.files.values() if seen.sha256 in new)
    request = RunRequest(
        run_key=f"{imports_run_key(new)}-{newest}", tags={"acton/import_files": str(len(new))}
    )
    return SensorResult(run_requests=[request], cursor=cursor)
