"""``acton mapping validate`` and ``acton mapping init``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from acton_pipelines import settings
from acton_pipelines.cli.crm_connection import connected_crm
from acton_pipelines.cli.errors import friendly_errors
from acton_pipelines.crm.client import CrmUnavailable
from acton_pipelines.mapping import (
    MappingError,
    check_against_crm,
    head_start_mapping,
    load_mapping,
)
from acton_pipelines.mapping.models import Mapping

DESCRIBED_OBJECTS = ("Lead", "Contact", "Account", "User")

STARTER_SCORE_SHEETS = """\
# Score sheets: the Act-On Primary Score is bound to the sheet named "default".
score_sheets:
  - name: default
    description: Starter sheet; add profile rules (field conditions and their points).
    profile_rules:
      - name: Has an email address
        when: {field: Email, op: is_not_empty}
        points: 10
"""

STARTER_SEGMENTS = """\
# How the default segments decide affiliation, and your own rule segments.
affiliation:
  prospect_account_types: [Prospect]
  customer_account_type_prefixes: [Customer]
  closed_won_makes_customer: true
  contacts_without_account_are_unaffiliated: true
segments: []
"""


def _summary(loaded: Mapping) -> str:
    standard = [f for f in loaded.fields if f.standard]
    custom = [f for f in loaded.fields if not f.standard]
    scores = ", ".join(f"{f.destination} <- sheet '{f.score_sheet}'" for f in loaded.score_fields)
    return (
        f"{len(standard)} standard fields, {len(custom)} custom fields; "
        f"score fields: {scores}; {len(loaded.score_sheets)} score sheets; "
        f"7 default segments + {len(loaded.segments)} custom"
    )


@click.group()
def mapping() -> None:
    """Check or create the field mapping."""


@mapping.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True, help="Skip the checks against the CRM's describe().")
def validate(directory: Path | None, offline: bool) -> None:
    """Validate the mapping in DIRECTORY (default: ACTON_MAPPING_DIR or mapping_config/).

    Exit status 1 and one line per problem (file, line, entry, fix) if it is not valid.
    """
    folder = directory or settings.mapping_dir()
    try:
        loaded = load_mapping(folder)
    except MappingError as error:
        click.echo(f"The mapping in {folder} is not valid:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    crm_note = "not checked against the CRM (--offline)"
    if not offline:
        try:
            with connected_crm() as crm:
                describes = {name: crm.describe(name) for name in DESCRIBED_OBJECTS}
        except CrmUnavailable as error:
            crm_note = f"not checked against the CRM: {error}"
        else:
            problems = check_against_crm(loaded, describes)
            if problems:
                click.echo(f"The mapping in {folder} does not fit the CRM:", err=True)
                for problem in problems:
                    click.echo(f"  {problem}", err=True)
                sys.exit(1)
            crm_note = "every mapped CRM field exists and has a compatible type"
    click.echo(f"Mapping OK ({folder}): {_summary(loaded)}; {crm_note}.")


@mapping.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing contact_mapping.yaml.")
@friendly_errors
def init(directory: Path | None, force: bool) -> None:
    """Write a head-start mapping from the CRM's describe() into DIRECTORY.

    The common standard fields are pre-mapped (as Act-On's head start does); starter
    score_sheets.yaml and segments.yaml are added when missing. Review it, then run
    `acton mapping validate`.
    """
    folder = directory or settings.mapping_dir()
    target = folder / "contact_mapping.yaml"
    if target.exists() and not force:
        raise click.ClickException(
            f"{target} exists; pass --force to overwrite it, or name another folder."
        )
    with connected_crm() as crm:
        describes = {name: crm.describe(name) for name in DESCRIBED_OBJECTS}
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(head_start_mapping(describes))
    for name, text in (
        ("score_sheets.yaml", STARTER_SCORE_SHEETS),
        ("segments.yaml", STARTER_SEGMENTS),
    ):
        if not (folder / name).exists():
            (folder / name).write_text(text)
    click.echo(f"Wrote {target}. Review it, then run: acton mapping validate {folder}")
