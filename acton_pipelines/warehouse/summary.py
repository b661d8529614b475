"""What is in the warehouse: the summary printed after a sync."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, MetaData, Table, func, inspect, select

REPORTED_TABLES = (
    "crm_leads",
    "crm_contacts",
    "crm_accounts",
    "crm_users",
    "crm_opportunities",
    "acton_contacts",
    "acton_contact_rejects",
    "contact_scores",
    "segments",
    "segment_members",
    "sync_runs",
)


@dataclass
class WarehouseSummary:
    """Row counts, rejects by reason and segment sizes."""

    url: str
    rows: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    segment_sizes: dict[str, int] = field(default_factory=dict)


def summarize(engine: Engine) -> WarehouseSummary:
    """Read the summary from the warehouse (tables that do not exist yet are left out)."""
    summary = WarehouseSummary(url=engine.url.render_as_string(hide_password=True))
    present = set(inspect(engine).get_table_names())
    metadata = MetaData()
    with engine.connect() as conn:
        for name in REPORTED_TABLES:
            if name in present:
                table = Table(name, metadata, autoload_with=conn)
                summary.rows[name] = conn.execute(
                    select(func.count()).select_from(table)
                ).scalar_one()
        if "acton_contact_rejects" in present:
            rejects = metadata.tables["acton_contact_rejects"]
            rows = conn.execute(
                select(rejects.c.field, rejects.c.reason, func.count())
                .group_by(rejects.c.field, rejects.c.reason)
                .order_by(func.count().desc())
            )
            summary.rejects_by_reason = {f"{f}: {r}": n for f, r, n in rows}
        if "segments" in present:
            segments = metadata.tables["segments"]
            rows = conn.execute(select(segments.c.segment, segments.c.member_count))
            summary.segment_sizes = dict(rows.all())
    return summary


def render(summary: WarehouseSummary) -> str:
    """The summary as text for the terminal."""
    lines = ["", "Warehouse tables (rows):"]
    lines += [f"  {name:<24} {count:>10,}" for name, count in summary.rows.items()]
    lines.append("")
    lines.append("Rejected values (quarantined in acton_contact_rejects):")
    if summary.rejects_by_reason:
        lines += [f"  {count:>8,}  {reason}" for reason, count in summary.rejects_by_reason.items()]
    else:
        lines.append("  none")
    lines.append("")
    lines.append("Segments (members):")
    width = max((len(name) for name in summary.segment_sizes), default=0)
    lines += [f"  {name:<{width}} {count:>10,}" for name, count in summary.segment_sizes.items()]
    lines.append("")
    lines.append(f"Warehouse: {summary.url}")
    return "\n".join(lines)
