"""``acton ui``: the Dagster UI and daemon on this workspace."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from acton_pipelines import settings
from acton_pipelines.cli.local_run import local_dagster_home


@click.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """Start the Dagster UI (and daemon) on this workspace with the same ACTON_HOME."""
    home = local_dagster_home()
    click.echo(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={home})")
    workspace = settings.REPO_ROOT / "workspace.yaml"
    command = [
        os.path.join(os.path.dirname(sys.executable), "dagster"),
        "dev",
        "-w",
        str(workspace),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    raise SystemExit(subprocess.call(command, env=os.environ.copy()))
