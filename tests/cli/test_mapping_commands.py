"""``acton mapping validate``: exit status and messages a user can act on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from acton_pipelines.cli.main import cli
from tests.conftest import REPO_CONFIG


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, target)
    return target


def remove_entry(path: Path, destination: str) -> None:
    """Drop the mapping entry whose destination is ``destination`` (its 3-4 YAML lines)."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(
        i for i, line in enumerate(lines) if line.strip() == f"- destination: {destination}"
    )
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    path.write_text("".join(lines[:start] + lines[end:]))


def test_the_default_mapping_is_valid(config_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["mapping", "validate", str(config_dir), "--offline"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Mapping OK")
    assert "score fields: Act-On Primary Score <- sheet 'default'" in result.output


def test_a_mapping_without_email_exits_1_naming_the_problem_and_the_fix(config_dir: Path) -> None:
    remove_entry(config_dir / "contact_mapping.yaml", "Email")
    result = CliRunner().invoke(cli, ["mapping", "validate", str(config_dir), "--offline"])
    assert result.exit_code == 1
    assert "contact_mapping.yaml" in result.output
    assert "Email" in result.output and "must" in result.output.lower()
    assert "Traceback" not in result.output


def test_a_mapping_without_a_score_field_exits_1(config_dir: Path) -> None:
    mapping_file = config_dir / "contact_mapping.yaml"
    remove_entry(mapping_file, "Act-On Primary Score")
    remove_entry(mapping_file, "Fit Score")
    result = CliRunner().invoke(cli, ["mapping", "validate", str(config_dir), "--offline"])
    assert result.exit_code == 1
    assert "score field" in result.output.lower()
    assert "contact_mapping.yaml" in result.output
