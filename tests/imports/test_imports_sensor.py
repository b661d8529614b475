"""The imports sensor: one run per set of new files, remembered by content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context

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
    assert json.loads(result.cursor or "") == []


def test_new_files_request_one_run_keyed_by_their_hashes(imports: Path) -> None:
    evaluate(None)
    (imports / "contacts-a.csv").write_bytes(b"email\na@example.com\n")
    (imports / "opt_outs.csv").write_bytes(b"email\nb@example.com\n")
    (imports / ".contacts-c.csv").write_bytes(b"email\nstill-uploading@example.com\n")
    hashes = sorted([sha(b"email\na@example.com\n"), sha(b"email\nb@example.com\n")])

    result = evaluate("[]")
    (request,) = result.run_requests or []
    assert request.run_key == hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert request.run_key == imports_run_key(set(hashes))
    assert json.loads(result.cursor or "") == hashes

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
    assert request.run_key == imports_run_key({sha(b"email,field,value,changed_at\n")})


def test_a_cursor_that_is_not_ours_counts_as_none(imports: Path) -> None:
    imports.mkdir()
    (imports / "contacts.csv").write_bytes(b"email\n")
    for cursor in ("not json", '{"a": 1}'):
        assert len(evaluate(cursor).run_requests or []) == 1
