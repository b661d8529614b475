"""The ``acton`` command line."""

from acton_pipelines.cli.main import main

__all__ = ["main"]
