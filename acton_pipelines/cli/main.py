"""``acton``: validate the mapping, seed the sandbox, run syncs, look at samples."""

from __future__ import annotations

import click

from acton_pipelines.cli.demo import demo
from acton_pipelines.cli.imports import imports
from acton_pipelines.cli.mapping import mapping
from acton_pipelines.cli.push import push
from acton_pipelines.cli.sample import sample
from acton_pipelines.cli.sandbox import sandbox
from acton_pipelines.cli.status import status
from acton_pipelines.cli.summary import summary
from acton_pipelines.cli.sync import sync
from acton_pipelines.cli.ui import ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """acton_pipelines: CRM Leads and Contacts mapped and synced into Act-On Contacts.

    State lives in ACTON_HOME (default .acton/), the mapping in ACTON_MAPPING_DIR (default
    mapping_config/), the warehouse at ACTON_WAREHOUSE_URL (default a SQLite file in
    ACTON_HOME).
    """


for command in (mapping, sandbox, sync, imports, push, sample, demo, summary, status, ui):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli()
