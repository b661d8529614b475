"""The files of the imports folder, identified by the sha256 of their bytes, and where they go
once imported: ``processed/`` (applied, or already imported) or ``rejected/`` (with the reasons
beside them in ``<name>.errors.txt``)."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from acton_pipelines.imports.kinds import ImportKind, kind_of

# The sub-folders of the imports folder that imported files are moved to. Being sub-folders,
# ``import_paths`` never lists what they hold.
PROCESSED_DIR = "processed"
REJECTED_DIR = "rejected"
ERRORS_SUFFIX = ".errors.txt"

# Read files in pieces when only their hash is wanted: memory stays flat whatever their size.
_HASH_CHUNK = 1 << 20


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
        """The file at ``path``, read whole."""
        return cls(name=path.name, content=path.read_bytes())


def sha256_of(path: Path) -> str:
    """The sha256 of the file at ``path`` (the same as ``ImportFile.read(path).sha256``), read
    in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def import_paths(folder: Path) -> list[Path]:
    """The files to import: ``contacts*`` files first (they create the contacts the other
    kinds may name), then the rest, each group in name order.

    Hidden files (``.name``) are left alone, so a file can be written under a hidden name and
    renamed once complete: a half-written file is never read. Sub-folders (``processed/``,
    ``rejected/`` among them) are ignored.
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


def problem_line(file_name: str, line: int, column: str, value: str | None, reason: str) -> str:
    """One reason a file was rejected, as ``<file>, line N, column C: <reason> (value 'v')``
    (no value part when the problem has none): the lines of ``<name>.errors.txt`` and of
    ``acton imports``."""
    text = f"{file_name}, line {line}, column {column}: {reason}"
    return text if value is None else f"{text} (value {value!r})"


def errors_path(moved: Path) -> Path:
    """The reasons file beside the rejected file ``moved``: ``<file name>.errors.txt``."""
    return moved.with_name(moved.name + ERRORS_SUFFIX)


def move_to_processed(path: Path) -> Path:
    """Move the file at ``path`` into ``processed/`` beside it; returns where it went."""
    return _move_into(path, path.parent / PROCESSED_DIR, with_errors=False)


def move_to_rejected(path: Path, reasons: Iterable[str]) -> Path:
    """Move the file at ``path`` into ``rejected/`` beside it and write ``reasons`` (lines of
    ``problem_line``) beside it in ``<file name>.errors.txt``; returns where the file went."""
    moved = _move_into(path, path.parent / REJECTED_DIR, with_errors=True)
    # "x": never overwrite, even a reasons file written meanwhile by someone else.
    with errors_path(moved).open("x", encoding="utf-8") as stream:
        stream.writelines(f"{reason}\n" for reason in reasons)
    return moved


def moved_candidates(folder: Path, name: str) -> list[Path]:
    """The files of ``folder`` that a file named ``name`` may have been moved to: ``name``
    itself, then ``name`` with a ``-N`` suffix (see ``_move_into``)."""
    stem, suffix = _split_name(name)
    numbered = []
    # Not glob: a name may hold "[" or "*".
    for path in folder.iterdir() if folder.is_dir() else []:
        if path.name.startswith(f"{stem}-") and path.name.endswith(suffix):
            number = path.name[len(stem) + 1 : len(path.name) - len(suffix)]
            if number.isdigit():
                numbered.append((int(number), path))
    exact = folder / name
    return ([exact] if exact.is_file() else []) + [path for _, path in sorted(numbered)]


def find_moved(folder: Path, name: str, sha256: str) -> Path | None:
    """Where in ``folder`` the file named ``name`` with content ``sha256`` was moved to, or
    ``None`` (moved on since, say)."""
    for path in moved_candidates(folder, name):
        try:
            if sha256_of(path) == sha256:
                return path
        except OSError:
            continue
    return None


def _split_name(name: str) -> tuple[str, str]:
    """``contacts.csv`` -> (``contacts``, ``.csv``); a name without extension keeps all."""
    path = Path(name)
    return path.stem, path.suffix


def _move_into(path: Path, folder: Path, *, with_errors: bool) -> Path:
    """Move ``path`` into ``folder`` without ever overwriting: on a name clash the name gets
    ``-2``, ``-3``, ... before its extension (``with_errors``: its ``.errors.txt`` name must be
    free too)."""
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:
        raise FileExistsError(
            f"Cannot move {path.name} into {folder}: something that is not a folder has that "
            "name. Rename or remove it."
        ) from None
    stem, suffix = _split_name(path.name)
    number = 1
    while True:
        target = folder / (path.name if number == 1 else f"{stem}-{number}{suffix}")
        number += 1
        if with_errors and errors_path(target).exists():
            continue
        if _place(path, target):
            return target


def _place(path: Path, target: Path) -> bool:
    """Move ``path`` to ``target`` if nothing is there; ``False`` if something is.

    A hard link fails when the target exists, so even two runs moving at once never replace a
    file; ``rename`` alone would. On a file system without hard links, check then rename.
    """
    try:
        os.link(path, target)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            return False
        path.rename(target)
        return True
    path.unlink()
    return True
