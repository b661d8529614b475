"""``acton imports`` on a private ACTON_HOME: what it applied, what it rejected and why, and
its exit status (1 when a file was rejected)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from acton_pipelines.cli.main import cli
from tests.imports.conftest import ImportHome, csv_text


@pytest.fixture
def cli_home(home: ImportHome, monkeypatch: pytest.MonkeyPatch) -> ImportHome:
    """The synced home, with its own Dagster instance for the in-process run (the command
    sets ``DAGSTER_HOME`` itself; setting it here first puts it back after the test)."""
    monkeypatch.setenv("DAGSTER_HOME", str(home.path / "dagster"))
    return home


def acton_imports() -> Result:
    return CliRunner().invoke(cli, ["imports"])


def test_an_empty_folder_says_so_and_exits_0(cli_home: ImportHome) -> None:
    result = acton_imports()
    assert result.exit_code == 0, result.output
    assert "No new files." in result.stdout


def test_applied_files_are_listed_and_exit_0(cli_home: ImportHome) -> None:
    cli_home.drop(
        "contacts-fair.csv", csv_text("email,First Name", "a@example.com,A", "b@example.com,B")
    )
    cli_home.drop("opt_outs-fair.csv", csv_text("email", "a@example.com"))
    result = acton_imports()
    assert result.exit_code == 0, result.output
    assert "Applied contacts-fair.csv (2 row(s))." in result.stdout
    assert "Applied opt_outs-fair.csv (1 row(s))." in result.stdout
    assert "Rejected" not in result.output
    assert sorted(p.name for p in (cli_home.imports / "processed").iterdir()) == [
        "contacts-fair.csv",
        "opt_outs-fair.csv",
    ]

    # The same files again: already imported, nothing new from this run.
    again = acton_imports()
    assert again.exit_code == 0 and "No new files." in again.stdout


def test_a_rejected_file_is_explained_and_exits_1(cli_home: ImportHome) -> None:
    cli_home.drop("contacts-good.csv", csv_text("email,First Name", "good@example.com,Good"))
    cli_home.drop(
        "contacts-bad.csv",
        csv_text("email,First Name,Newsletter", "bad@example,Bad,perhaps", "ok@example.com,Ok,no"),
    )
    result = acton_imports()
    assert result.exit_code == 1, result.output
    assert "Applied contacts-good.csv (1 row(s))." in result.stdout
    moved = cli_home.imports / "rejected" / "contacts-bad.csv"
    assert moved.is_file()
    assert f"Rejected contacts-bad.csv (moved to {moved}); nothing of it was applied:" in (
        result.stderr
    )
    reasons = [line for line in result.stderr.splitlines() if line.startswith("  contacts-")]
    assert sorted(reasons) == [
        "  contacts-bad.csv, line 2, column Newsletter: not a boolean (expected true/false, "
        "yes/no or 1/0) (value 'perhaps')",
        "  contacts-bad.csv, line 2, column email: not a valid email address (value 'bad@example')",
    ]
    assert cli_home.rows("SELECT count(*) FROM acton_contacts WHERE email = 'ok@example.com'") == [
        (0,)
    ]
