"""The files of the imports folder, identified by the sha256 of their bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from acton_pipelines.imports.kinds import ImportKind, kind_of


@dataclass(frozen=True)
class ImportFile:
    """One file of the imports folder: its name, its bytes and their sha256 (its identity:
    a renamed or copied file is the same file and is not applied again)."""

    name: str
    content: bytes

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @classmethod
    def read(cls, path: Path) -> ImportFile:
        return cls(name=path.name, content=path.read_bytes())


def import_paths(folder: Path) -> list[Path]:
    """The files to import: ``contacts*`` files first (they create the contacts the other
    kinds may name), then the rest, each group in name order.

    Hidden files (``.name``) are left alone, so a file can be written under a hidden name and
    renamed once complete: a half-written file is never read. Sub-folders are ignored.
    """
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: (kind_of(p.name) is not ImportKind.CONTACTS, p.name),
    )


def import_files(folder: Path) -> list[ImportFile]:
    """Every file of ``folder`` to import, read, in name order."""
    return [ImportFile.read(path) for path in import_paths(folder)]
