"""Where acton_pipelines keeps its state, from environment variables with local defaults.

``ACTON_HOME``        state folder: sandbox CRM data, the SQLite warehouse, Dagster home for the
                      demo (default ``.acton/`` in the repository; git-ignored).
``ACTON_MAPPING_DIR`` the mapping folder (default ``mapping_config/`` in the repository).
``ACTON_WAREHOUSE_URL`` SQLAlchemy URL of the warehouse (default a SQLite file in ``ACTON_HOME``).
``ACTON_IMPORTS_DIR`` the folder of Act-On-side CSV files (default ``ACTON_HOME/imports``).
"""

from __future__ import annotations

import os
from pathlib import Path

from acton_pipelines.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


def acton_home() -> Path:
    """The state folder (``ACTON_HOME``), created on first use."""
    home = Path(os.environ.get("ACTON_HOME") or REPO_ROOT / ".acton").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def mapping_dir() -> Path:
    """The mapping folder (``ACTON_MAPPING_DIR``)."""
    return Path(os.environ.get("ACTON_MAPPING_DIR") or REPO_ROOT / "mapping_config").expanduser()


def default_warehouse_url() -> str:
    """The SQLite warehouse under ``ACTON_HOME``, used when ``ACTON_WAREHOUSE_URL`` is unset."""
    return f"sqlite:///{acton_home() / 'warehouse.sqlite'}"


def warehouse_url() -> str:
    """``ACTON_WAREHOUSE_URL`` or the SQLite default."""
    return os.environ.get("ACTON_WAREHOUSE_URL") or default_warehouse_url()


def sandbox_dir() -> Path:
    """Sandbox CRM data and its locally generated TLS certificates."""
    path = acton_home() / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dagster_home() -> Path:
    """Dagster's home for local runs (``DAGSTER_HOME`` if set, else ``ACTON_HOME/dagster``)."""
    path = Path(os.environ.get("DAGSTER_HOME") or acton_home() / "dagster")
    path.mkdir(parents=True, exist_ok=True)
    return path


def imports_dir() -> Path:
    """The folder Act-On-side CSV files are dropped into (``ACTON_IMPORTS_DIR``, default
    ``ACTON_HOME/imports``), created on first use."""
    configured = os.environ.get("ACTON_IMPORTS_DIR")
    path = Path(configured).expanduser() if configured else acton_home() / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def whole_number_from_env(name: str, default: int, *, of: str, minimum: int = 0) -> int:
    """The whole number in environment variable ``name`` (``_`` separators allowed), or
    ``default`` when it is unset or blank; anything else is a ``UserError`` naming the
    variable, the value and a good one. ``of`` says what is counted (``"records"``)."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        at_least = f" of at least {minimum}" if minimum else ""
        raise UserError(
            f"{name}={raw!r} is not a number of {of}; set it to a whole number{at_least}, "
            f"e.g. {name}={default}"
        )
    return int(raw)
