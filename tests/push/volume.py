"""The push at volume, shared by tests/push/test_push_at_volume.py and
benchmarks/push_at_volume.py: a synced home made to plan exactly N score changes, its sandbox
CRM served by ``acton sandbox serve`` in a process of its own (so that what the pushing
process allocates and spends is the pipeline's alone), and a push measured there."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from acton_pipelines.crm.objects import LEAD
from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.push.build import push_to_crm
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import crm_column_name
from tests.crm.test_login_modes import _read_until
from tests.push.helpers import MAPPING

_SERVE_STOP_S = 20.0


def score_changes(warehouse_url: str, changes: int) -> list[str]:
    """Make a synced warehouse plan exactly ``changes`` writes, one score on each of that
    many Leads: the mirror is set to agree with every computed score (and the opt-out list,
    not what volume is about, emptied), then the first sheet's score of the first
    ``changes`` Leads (by contact_id) moves by one. Their CRM Ids."""
    fields = [(f.score_sheet, f.source("Lead")) for f in MAPPING.score_fields]
    assigned = ", ".join(
        f"{crm_column_name(api_name)} = (SELECT s.score FROM contact_scores s "
        "JOIN acton_contacts c ON c.contact_id = s.contact_id "
        f"WHERE c.external_id = {LEAD.table}.id AND s.score_sheet = '{sheet}')"
        for sheet, api_name in fields
        if api_name
    )
    leads = (
        "SELECT c.contact_id FROM acton_contacts c "
        f"JOIN {LEAD.table} m ON m.id = c.external_id WHERE c.record_type = 'Lead' "
        "ORDER BY c.contact_id LIMIT :n"
    )
    with warehouse_engine(warehouse_url).begin() as conn:
        conn.execute(text("DELETE FROM opt_outs"))
        conn.execute(text(f"UPDATE {LEAD.table} SET {assigned}"))
        changed = conn.execute(text(leads), {"n": changes}).scalars().all()
        assert len(changed) == changes, f"only {len(changed)} Leads to change"
        conn.execute(
            text(
                "UPDATE contact_scores SET score = score + 1 WHERE score_sheet = :sheet "
                f"AND contact_id IN ({leads})"
            ),
            {"sheet": fields[0][0], "n": changes},
        )
        return list(
            conn.execute(
                text(f"SELECT external_id FROM acton_contacts WHERE contact_id IN ({leads})"),
                {"n": changes},
            ).scalars()
        )


@contextlib.contextmanager
def served_sandbox(acton_home: Path) -> Iterator[str]:
    """The sandbox CRM of ``acton_home`` served by ``acton sandbox serve`` on a free port; its
    URL."""
    env = {**os.environ, "ACTON_HOME": str(acton_home)}
    command = [str(Path(sys.executable).parent / "acton"), "sandbox", "serve", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output = _read_until(process, "ACTON_SANDBOX_URL=")
        found = re.search(r"ACTON_SANDBOX_URL=(\S+)", output)
        assert found, output
        yield found[1]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(_SERVE_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class MeasuredPush:
    """One push: its writes accepted, CPU seconds, wall seconds and (traced) the peak of the
    Python allocations it made, in bytes."""

    accepted: int
    cpu_seconds: float
    wall_seconds: float
    peak_bytes: int | None


def measured_push(warehouse_url: str, url: str, run_id: str, *, traced: bool) -> MeasuredPush:
    """Push the warehouse's plan to the sandbox served at ``url`` (whose CA certificate is
    under ``ACTON_HOME``), measuring the push alone (the login before it is not counted).
    ``traced``: with tracemalloc on (slower; its CPU seconds are then not the push's own)."""
    resource = SalesforceResource(
        sandbox_url=url,
        retry_initial_wait_seconds=0.01,
        retry_max_wait_seconds=0.05,
        retry_minutes=0.5,
    )
    with resource.connect() as client:
        if traced:
            tracemalloc.start()
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            result = push_to_crm(
                engine=warehouse_engine(warehouse_url),
                client=client,
                mapping=MAPPING,
                run_id=run_id,
                progress=lambda _: None,
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            peak = tracemalloc.get_traced_memory()[1] if traced else None
        finally:
            if traced:
                tracemalloc.stop()
    accepted = sum(n for outcome, n in result.outcomes.counts().items() if outcome.success)
    return MeasuredPush(accepted, cpu, wall, peak)
