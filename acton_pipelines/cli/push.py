"""``acton push [--dry-run]``: write scores and opt-outs back to the CRM, or show the plan."""

from __future__ import annotations

from collections import defaultdict

import click

from acton_pipelines import settings
from acton_pipelines.build.push import PushPlan, plan_push
from acton_pipelines.cli.errors import friendly_errors
from acton_pipelines.cli.job_runs import run_or_exit
from acton_pipelines.mapping import load_mapping
from acton_pipelines.push.plan import PlannedWrite
from acton_pipelines.warehouse.engine import warehouse_engine

EXAMPLES = 3


def render_plan(plan: PushPlan) -> str:
    """The plan per object and field: how many records change, a few examples, and why; the
    Leads to create; the edits the policy (or a later CRM change) keeps from the CRM."""
    writes, new_opt_outs = plan.writes, plan.new_opt_outs
    if not writes and not new_opt_outs and not plan.creates and not plan.not_pushed:
        return "Nothing to push: the CRM already holds every score, opt-out and edit."
    grouped: dict[tuple[str, str], list[PlannedWrite]] = defaultdict(list)
    for write in writes:
        grouped[(write.object, write.field)].append(write)
    records = len({(w.object, w.record_id) for w in writes})
    lines = [f"{len(writes):,} field writes on {records:,} CRM records:"]
    for (obj, field), group in sorted(grouped.items()):
        lines.append(f"  {obj}.{field}: {len(group):,} records ({group[0].reason})")
        for write in group[:EXAMPLES]:
            lines.append(f"      {write.record_id}: {write.old_value!r} -> {write.new_value!r}")
    if plan.creates:
        lines.append(f"{len(plan.creates):,} Leads to create (every mapped field):")
        for create in plan.creates[:EXAMPLES]:
            lines.append(f"      {create.email}: {', '.join(sorted(create.fields))}")
    if new_opt_outs:
        lines.append(f"{len(new_opt_outs):,} addresses opted out in the CRM join the opt-out list.")
    if plan.opted_out_again:
        lines.append(
            f"{len(plan.opted_out_again):,} addresses that opted back in were opted out in the "
            "CRM since: they are opted out again."
        )
    skipped: dict[tuple[str, str], int] = defaultdict(int)
    for decision in plan.not_pushed:
        skipped[(decision.status, decision.reason)] += 1
    if skipped:
        lines.append("Not pushed:")
        for (status, reason), count in sorted(skipped.items()):
            lines.append(f"  {count:,} edits {status.replace('_', ' ')}: {reason}")
    else:
        lines.append("Not pushed: nothing (scores and opt-outs always push).")
    return "\n".join(lines)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing, anywhere.")
@friendly_errors
def push(dry_run: bool) -> None:
    """Write Act-On's scores and the opt-out list back to the CRM (only changed values)."""
    mapping = load_mapping(settings.mapping_dir())
    if dry_run:
        plan = plan_push(warehouse_engine(settings.warehouse_url()), mapping)
        click.echo(render_plan(plan))
        return
    run_id = run_or_exit("push_to_crm", "push")
    click.echo(f"The push finished (run {run_id}); see crm_push_log for every write.")
