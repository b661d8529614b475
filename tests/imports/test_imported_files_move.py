"""Imported files leave the folder once their transaction has committed: applied (or already
imported) to ``processed/``, rejected to ``rejected/`` with ``<name>.errors.txt``; nothing is
ever overwritten, and a run killed between the commit and the move is healed by the next."""

from __future__ import annotations

from pathlib import Path

import pytest

from acton_pipelines import settings
from acton_pipelines.imports import build
from acton_pipelines.imports.build import ImportSummary, build_imports
from acton_pipelines.imports.files import (
    find_moved,
    move_to_processed,
    move_to_rejected,
    sha256_of,
)
from acton_pipelines.mapping import load_mapping
from acton_pipelines.warehouse.engine import warehouse_engine
from tests.imports.conftest import ImportHome, csv_text

GOOD = csv_text("email,First Name", "mover@example.com,Mo")
BAD = csv_text(
    "email,First Name,Newsletter",
    "ok@example.com,Ok,yes",
    "bad@example,Bad,perhaps",
    "worse@example.com,Worse,maybe",
)
BAD_REASONS = [
    "contacts-bad.csv, line 3, column email: not a valid email address (value 'bad@example')",
    "contacts-bad.csv, line 3, column Newsletter: not a boolean (expected true/false, yes/no "
    "or 1/0) (value 'perhaps')",
    "contacts-bad.csv, line 4, column Newsletter: not a boolean (expected true/false, yes/no "
    "or 1/0) (value 'maybe')",
]


class ProcessDied(BaseException):
    """Stands for the process being killed: nothing in the run catches it."""


def run(home: ImportHome, run_id: str = "test-run") -> tuple[ImportSummary, list[str]]:
    """One pass of the asset's logic over the home's folder; returns it and its log lines."""
    log: list[str] = []
    summary = build_imports(
        engine=warehouse_engine(home.warehouse_url),
        mapping=load_mapping(settings.mapping_dir()),
        folder=home.imports,
        run_id=run_id,
        progress=log.append,
    )
    return summary, log


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def reject_lines(home: ImportHome, file_name: str) -> list[str]:
    """The rejects table's rows of ``file_name``, as errors.txt lines, sorted."""
    rows = home.rows(
        'SELECT file_name, line, "column", value, reason FROM acton_import_rejects '
        "WHERE file_name = :f",
        f=file_name,
    )
    return sorted(
        f"{f}, line {n}, column {c}: {r}" + ("" if v is None else f" (value {v!r})")
        for f, n, c, v, r in rows
    )


def test_applied_and_rejected_files_leave_the_folder(home: ImportHome) -> None:
    home.drop("contacts-good.csv", GOOD)
    home.drop("contacts-bad.csv", BAD)
    (home.imports / ".contacts-uploading.csv").write_text(GOOD)
    summary, log = run(home)

    assert names(home.imports) == [".contacts-uploading.csv", "processed", "rejected"]
    assert names(home.imports / "processed") == ["contacts-good.csv"]
    assert (home.imports / "processed" / "contacts-good.csv").read_text() == GOOD
    assert names(home.imports / "rejected") == ["contacts-bad.csv", "contacts-bad.csv.errors.txt"]
    assert (home.imports / "rejected" / "contacts-bad.csv").read_text() == BAD
    errors = (home.imports / "rejected" / "contacts-bad.csv.errors.txt").read_text()
    assert sorted(errors.splitlines()) == sorted(BAD_REASONS)
    # The same problems as the rejects table, one per line.
    assert sorted(errors.splitlines()) == reject_lines(home, "contacts-bad.csv")

    moved = {f.name: f.moved_to for f in summary.files}
    assert moved == {
        "contacts-good.csv": home.imports / "processed" / "contacts-good.csv",
        "contacts-bad.csv": home.imports / "rejected" / "contacts-bad.csv",
    }
    assert any(
        "contacts-bad.csv: rejected" in line and "rejected/contacts-bad" in line for line in log
    )


def test_a_name_taken_in_the_target_folder_gets_a_number(home: ImportHome) -> None:
    (home.imports / "processed").mkdir()
    (home.imports / "processed" / "contacts-good.csv").write_text("an older file\n")
    (home.imports / "processed" / "contacts-good-2.csv").write_text("another older file\n")
    (home.imports / "rejected").mkdir()
    # Only the reasons file of an earlier reject is left: its name is taken all the same.
    (home.imports / "rejected" / "contacts-bad.csv.errors.txt").write_text("earlier reasons\n")
    home.drop("contacts-good.csv", GOOD)
    home.drop("contacts-bad.csv", BAD)
    run(home)

    processed = home.imports / "processed"
    assert names(processed) == ["contacts-good-2.csv", "contacts-good-3.csv", "contacts-good.csv"]
    assert (processed / "contacts-good.csv").read_text() == "an older file\n"
    assert (processed / "contacts-good-2.csv").read_text() == "another older file\n"
    assert (processed / "contacts-good-3.csv").read_text() == GOOD
    rejected = home.imports / "rejected"
    assert names(rejected) == [
        "contacts-bad-2.csv",
        "contacts-bad-2.csv.errors.txt",
        "contacts-bad.csv.errors.txt",
    ]
    assert (rejected / "contacts-bad.csv.errors.txt").read_text() == "earlier reasons\n"
    assert len((rejected / "contacts-bad-2.csv.errors.txt").read_text().splitlines()) == 3


def test_content_already_imported_is_moved_and_the_log_says_so(home: ImportHome) -> None:
    home.drop("contacts-good.csv", GOOD)
    run(home, "first")
    home.drop("contacts-again.csv", GOOD)
    summary, log = run(home, "second")

    (outcome,) = summary.files
    assert (outcome.name, outcome.status) == ("contacts-again.csv", "skipped")
    assert outcome.moved_to == home.imports / "processed" / "contacts-again.csv"
    assert names(home.imports / "processed") == ["contacts-again.csv", "contacts-good.csv"]
    (line,) = log
    assert "contacts-again.csv: skipped" in line and "already imported" in line
    assert "processed/contacts-again.csv" in line
    assert home.rows("SELECT sync_run_id FROM acton_import_files") == [("first",)]


@pytest.mark.parametrize(
    ("name", "content", "target"),
    [("contacts-good.csv", GOOD, "processed"), ("contacts-bad.csv", BAD, "rejected")],
)
def test_a_run_killed_between_commit_and_move_is_healed_by_the_next(
    home: ImportHome, monkeypatch: pytest.MonkeyPatch, name: str, content: str, target: str
) -> None:
    home.drop(name, content)

    def die(*args: object, **kwargs: object) -> Path:
        raise ProcessDied

    with monkeypatch.context() as dying:
        dying.setattr(build, "move_to_processed", die)
        dying.setattr(build, "move_to_rejected", die)
        with pytest.raises(ProcessDied):
            run(home, "killed")
    # The transaction committed; the file is still there.
    assert home.rows("SELECT file_name, sync_run_id FROM acton_import_files") == [(name, "killed")]
    assert names(home.imports) == [name]

    summary, log = run(home, "next")
    (outcome,) = summary.files
    assert outcome.status == "skipped" and "already imported" in log[0]
    assert names(home.imports) == [target]
    assert (home.imports / target / name).read_text() == content
    # Nothing applied twice: the import stays the killed run's.
    assert home.rows("SELECT file_name, sync_run_id FROM acton_import_files") == [(name, "killed")]
    if target == "rejected":
        # The reasons come back from acton_import_rejects.
        errors = (home.imports / "rejected" / f"{name}.errors.txt").read_text()
        assert sorted(errors.splitlines()) == sorted(BAD_REASONS)


def test_a_file_that_cannot_be_moved_stays_and_the_log_says_how_to_fix_it(
    home: ImportHome,
) -> None:
    # A dangling link where the processed/ folder should be (a plain file there would be
    # imported itself, as a file of unknown kind): the move fails, the import does not.
    (home.imports / "processed").symlink_to(home.path / "nowhere")
    home.drop("contacts-good.csv", GOOD)
    summary, log = run(home)

    (outcome,) = summary.files
    assert outcome.status == "applied" and outcome.moved_to is None
    assert (home.imports / "contacts-good.csv").is_file()
    assert any(
        "not a folder has that name. Rename or remove it" in line and "contacts-good.csv" in line
        for line in log
    )
    assert home.rows("SELECT first_name FROM acton_contacts WHERE email = 'mover@example.com'") == [
        ("Mo",)
    ]

    (home.imports / "processed").unlink()
    summary, _ = run(home, "after-the-fix")
    assert [f.status for f in summary.files] == ["skipped"]
    assert names(home.imports / "processed") == ["contacts-good.csv"]


def test_find_moved_finds_a_file_by_name_and_content(tmp_path: Path) -> None:
    for index, text in enumerate(["one\n", "two\n", "three\n"]):
        path = tmp_path / "a[1].csv"
        path.write_text(text)
        moved = move_to_processed(path)
        assert moved.name == ("a[1].csv" if index == 0 else f"a[1]-{index + 1}.csv")
    processed = tmp_path / "processed"
    (processed / "a[1]-x.csv").write_text("two\n")  # not one of ours: not a number
    assert find_moved(processed, "a[1].csv", sha256_of(processed / "a[1]-2.csv")) == (
        processed / "a[1]-2.csv"
    )
    assert find_moved(processed, "a[1].csv", "0" * 64) is None


def test_a_name_without_extension_gets_its_number_at_the_end(tmp_path: Path) -> None:
    (tmp_path / "rejected").mkdir()
    (tmp_path / "rejected" / "notes").write_text("older\n")
    (tmp_path / "notes").write_text("newer\n")
    moved = move_to_rejected(tmp_path / "notes", ["notes, line 1, column (file): why"])
    assert moved == tmp_path / "rejected" / "notes-2"
    assert (tmp_path / "rejected" / "notes-2.errors.txt").read_text() == (
        "notes, line 1, column (file): why\n"
    )
