"""What a derived table must catch up on: the upstream writes since its own last good build.

``acton_contacts`` is built from the CRM mirror tables, ``contact_scores`` and
``segment_members`` from ``acton_contacts``. Each build records in its ``sync_runs`` row the
``seq`` of the newest upstream row it took in (``consumed_through``); the next build takes in
every successful upstream row above that mark, whichever run wrote it. So when a run fails
half-way (the mirrors synced, ``acton_contacts`` did not), or is killed, the next run rebuilds
what the failed one changed as well as its own changes, and no deletion or update is left
behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Select, func, inspect, select

from acton_pipelines.warehouse.tables import run_mappings, sync_runs


@dataclass(frozen=True)
class Upstream:
    """The upstream ``sync_runs`` rows a build takes in: the runs that wrote them, their modes
    and the newest ``seq`` among them (``None``: nothing upstream ever succeeded)."""

    table: str
    objects: tuple[str, ...]
    mark: int
    through: int | None
    run_ids: tuple[str, ...]
    modes: frozenset[str]

    @property
    def includes_full(self) -> bool:
        """Whether a full build upstream is among them (then everything is rebuilt)."""
        return "full" in self.modes

    def runs(self) -> Select:
        """``SELECT run_id`` of the pending upstream runs, for ``... IN (...)`` conditions."""
        return _pending(self.objects, self.mark, self.through).with_only_columns(sync_runs.c.run_id)

    def describe(self) -> str:
        if not self.run_ids:
            return f"{self.table}: nothing new upstream since its last build"
        runs = len(self.run_ids)
        kinds = "/".join(sorted(self.modes))
        return (
            f"{self.table}: taking in {runs} upstream run{'s' if runs != 1 else ''} ({kinds}) "
            f"since its last build (sync_runs.seq {self.mark} < seq <= {self.through})"
        )


def _pending(objects: tuple[str, ...], mark: int, through: int | None) -> Select:
    condition = [
        sync_runs.c.object.in_(objects),
        sync_runs.c.status == "success",
        sync_runs.c.seq > mark,
    ]
    if through is not None:
        condition.append(sync_runs.c.seq <= through)
    return select(sync_runs.c.run_id, sync_runs.c.mode, sync_runs.c.seq).where(*condition)


def build_mark(engine: Engine, table: str) -> int:
    """The upstream ``seq`` the last successful build of ``table`` took in (0: none yet)."""
    statement = select(func.max(sync_runs.c.consumed_through)).where(
        sync_runs.c.object == table, sync_runs.c.status == "success"
    )
    with engine.connect() as conn:
        return int(conn.execute(statement).scalar_one() or 0)


def pending_upstream(engine: Engine, table: str, objects: tuple[str, ...]) -> Upstream:
    """The successful ``sync_runs`` rows of ``objects`` that ``table`` has not taken in yet.

    Read once, before the build: rows committed while it runs are left to the next build
    (``through`` pins the set, and is what the build records as ``consumed_through``).
    """
    if sync_runs.name not in inspect(engine).get_table_names():
        return Upstream(table, objects, 0, None, (), frozenset())
    mark = build_mark(engine, table)
    with engine.connect() as conn:
        rows = conn.execute(_pending(objects, mark, None)).all()
    if not rows:
        return Upstream(table, objects, mark, None, (), frozenset())
    return Upstream(
        table=table,
        objects=objects,
        mark=mark,
        through=max(int(r.seq) for r in rows),
        run_ids=tuple(sorted({r.run_id for r in rows})),
        modes=frozenset(r.mode for r in rows),
    )


def mapping_changed_since_last_build(engine: Engine, table: str, run_id: str) -> bool:
    """Whether this run uses another mapping version than the last successful build of
    ``table`` did (score sheets or segment rules may have changed: rebuild everything).
    True when either version is unknown."""
    if run_mappings.name not in inspect(engine).get_table_names():
        return True
    last_build = (
        select(sync_runs.c.run_id)
        .where(sync_runs.c.object == table, sync_runs.c.status == "success")
        .order_by(sync_runs.c.seq.desc().nulls_last())
        .limit(1)
    )
    with engine.connect() as conn:
        last_run = conn.execute(last_build).scalar_one_or_none()
        rows = conn.execute(
            select(run_mappings.c.run_id, run_mappings.c.mapping_hash).where(
                run_mappings.c.run_id.in_([run_id, last_run or run_id])
            )
        ).all()
    versions = {row.run_id: row.mapping_hash for row in rows}
    now, before = versions.get(run_id), versions.get(last_run) if last_run else None
    return now is None or before is None or now != before
