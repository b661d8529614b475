"""The imports sensor: one run per set of new files, remembered by content; only new or
changed files are read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context

from acton_pipelines.imports import files
from acton_pipelines.schedules.imports_sensor import imports_run_key, imports_sensor


@pytest.fixture
def imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "imports"
    monkeypatch.setenv("ACTON_IMPORTS_DIR", str(folder))
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "home"))
    return folder


def evaluate(cursor: str | None) -> SensorResult:
    result = imports_sensor(build_sensor_context(cursor=cursor))
    assert isinstance(result, SensorResult)
    return result


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_an_empty_folder_is_created_and_skipped(imports: Path) -> None:
    result = evaluate(None)
    assert imports.is_dir()
    assert not result.run_requests and result.skip_reason is not None
    assert json.loads(result.cursor or "") == {}


def test_new_files_request_one_run_keyed_by_their_hashes(imports: Path) -> None:
    evaluate(None)
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    (imports / "opt_outs.csv").write_bytes(b"email\nb@example.com\n")
    (imports / ".contacts-c.csv").write_bytes(b"email\nstill-uploading@example.com\n")
    hashes = sorted([sha(b"email\na@example.com\n"), sha(b"email\nb@example.com\n")])

    result = evaluate("[]")
    (request,) = result.run_requests or []
    newest = max((imports / n).stat().st_mtime_ns for n in ("contacts-a.csv", "opt_outs.csv"))
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert request.run_key == f"{digest}-{newest}" == f"{imports_run_key(set(hashes))}-{newest}"
    remembered = json.loads(result.cursor or "")
    assert sorted(remembered) == ["contacts-a.csv", "opt_outs.csv"]
    size, mtime_ns, sha256 = remembered["contacts-a.csv"]
    stat = (imports / "contacts-a.csv").stat()
    assert (size, mtime_ns, sha256) == (stat.st_size, stat.st_mtime_ns, hashes_of("a")[0])

    again = evaluate(result.cursor)
    assert not again.run_requests and again.skip_reason is not None


def test_only_the_new_files_make_the_next_run_key(imports: Path) -> None:
    imports.mkdir()
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    cursor = evaluate(None).cursor
    # A renamed copy is the same content: nothing new.
    (imports / "contacts-a-copy.csv").write_bytes(b"email\na@example.com\n")
    assert not evaluate(cursor).run_requests

    (imports / "edits.csv").write_bytes(b"email,field,value,changed_at\n")
    (request,) = evaluate(cursor).run_requests or []
    assert request.run_key.startswith(
        imports_run_key({sha(b"email,field,value,changed_at\n")}) + "-"
    )


def test_a_cursor_that_is_not_ours_counts_as_none(imports: Path) -> None:
    imports.mkdir()
    (imports / "contacts.csv").write_bytes(b"email\n")
    for cursor in ("not json", "[1, 2]", '{"contacts.csv": 1}', '{"contacts.csv": [1, 2]}'):
        assert len(evaluate(cursor).run_requests or []) == 1


def hashes_of(*names: str) -> list[str]:
    return [sha(f"email\n{name}@example.com\n".encode()) for name in names]


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the sensor reads to hash, in order (the real hash still runs)."""
    names: list[str] = []
    real = files.sha256_of

    def counting(path: Path) -> str:
        names.append(path.name)
        return real(path)

    monkeypatch.setattr(files, "sha256_of", counting)
    return names


def test_an_unchanged_file_is_not_read_again(imports: Path, hashed: list[str]) -> None:
    imports.mkdir()
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    first = evaluate(None)
    assert hashed == ["contacts-a.csv"] and len(first.run_requests or []) == 1

    (imports / "contacts-b.csv").write_bytes(b"email\nb@example.com\n")
    second = evaluate(first.cursor)
    third = evaluate(second.cursor)
    # a was read once; b once, when it appeared.
    assert hashed == ["contacts-a.csv", "contacts-b.csv"]
    (request,) = second.run_requests or []
    assert request.run_key.startswith(imports_run_key(set(hashes_of("b"))) + "-")
    assert not third.run_requests and third.cursor == second.cursor


def test_a_changed_file_under_the_same_name_requests_a_run(
    imports: Path, hashed: list[str]
) -> None:
    imports.mkdir()
    path = imports / "contacts-a.csv"
    path.write_bytes(b"email\na@example.com\n")
    first = evaluate(None)
    before = path.stat().st_mtime_ns

    path.write_bytes(b"email\nchanged@example.com\n")
    # Set the time explicitly: two writes may fall in one tick of the file system's clock.
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))
    (request,) = evaluate(first.cursor).run_requests or []
    assert request.run_key.startswith(imports_run_key(set(hashes_of("changed"))) + "-")
    assert hashed == ["contacts-a.csv", "contacts-a.csv"]


def test_a_touched_file_with_the_same_content_is_read_but_requests_nothing(
    imports: Path, hashed: list[str]
) -> None:
    imports.mkdir()
    path = imports / "contacts-a.csv"
    path.write_bytes(b"email\na@example.com\n")
    first = evaluate(None)
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))

    again = evaluate(first.cursor)
    assert not again.run_requests
    assert hashed == ["contacts-a.csv", "contacts-a.csv"]
    assert json.loads(again.cursor or "")["contacts-a.csv"][1] == later


def test_sub_folders_and_what_they_hold_are_ignored(imports: Path, hashed: list[str]) -> None:
    for sub in ("processed", "rejected", "other"):
        (imports / sub).mkdir(parents=True)
        (imports / sub / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    result = evaluate(None)
    assert not result.run_requests and hashed == []
    assert json.loads(result.cursor or "") == {}


def test_files_moved_out_by_the_run_leave_the_cursor(imports: Path) -> None:
    imports.mkdir()
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    first = evaluate(None)
    (imports / "processed").mkdir()
    (imports / "contacts-a.csv").rename(imports / "processed" / "contacts-a.csv")
    after = evaluate(first.cursor)
    assert not after.run_requests and json.loads(after.cursor or "") == {}


def test_an_unreadable_file_does_not_stop_the_others(
    imports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imports.mkdir()
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    (imports / "contacts-locked.csv").write_bytes(b"email\nlocked@example.com\n")
    real = files.sha256_of

    def locked(path: Path) -> str:
        # Tests run as root, whom chmod 000 does not stop: refuse as the file system would.
        if path.name == "contacts-locked.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with monkeypatch.context() as patch:
        patch.setattr(files, "sha256_of", locked)
        first = evaluate(None)
    (request,) = first.run_requests or []
    assert request.run_key.startswith(imports_run_key(set(hashes_of("a"))) + "-")
    assert sorted(json.loads(first.cursor or "")) == ["contacts-a.csv"]

    # Readable again: new to the sensor, so read and requested.
    (again,) = evaluate(first.cursor).run_requests or []
    assert again.run_key.startswith(imports_run_key(set(hashes_of("locked"))) + "-")


def test_content_dropped_again_after_its_first_copy_left_requests_a_new_run(
    imports: Path,
) -> None:
    imports.mkdir()
    path = imports / "contacts-a.csv"
    path.write_bytes(b"email\na@example.com\n")
    first = evaluate(None)
    (request,) = first.run_requests or []
    # The run moved the file to processed/; the next tick forgets it.
    (imports / "processed").mkdir()
    path.rename(imports / "processed" / path.name)
    emptied = evaluate(first.cursor)
    assert not emptied.run_requests

    path.write_bytes(b"email\na@example.com\n")
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    (again,) = evaluate(emptied.cursor).run_requests or []
    # The same content, dropped again: a key of its own, or Dagster would never run it.
    assert again.run_key != request.run_key
