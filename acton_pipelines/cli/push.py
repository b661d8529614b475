"""``acton push [--dry-run]``: write scores, opt-out flags, edits and new Leads back to the CRM,
or show the plan."""

from __future__ import annotations

from collections import defaultdict

import click
from simple_salesforce.exceptions import SalesforceError

from acton_pipelines import settings
from acton_pipelines.cli.crm_connection import connected_crm
from acton_pipelines.cli.errors import friendly_errors
from acton_pipelines.cli.job_runs import run_or_exit
from acton_pipelines.crm.client import CrmUnavailable
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.mapping import load_mapping
from acton_pipelines.push.build import PushPlan, contact_id_field, plan_push, planned_redirects
from acton_pipelines.push.plan import PlannedWrite
from acton_pipelines.warehouse.engine import warehouse_engine

EXAMPLES = 3


def _write_lines(writes: list[PlannedWrite]) -> list[str]:
    grouped: dict[tuple[str, str, str], list[PlannedWrite]] = defaultdict(list)
    for write in writes:
        grouped[(write.object, write.field, write.reason)].append(write)
    records = len({(w.object, w.record_id) for w in writes})
    lines = [f"{len(writes):,} field writes on {records:,} CRM records:"]
    for (obj, field, reason), group in sorted(grouped.items()):
        lines.append(f"  {obj}.{field}: {len(group):,} records ({reason}: {group[0].detail})")
        for write in group[:EXAMPLES]:
            lines.append(f"      {write.record_id}: {write.old_value!r} -> {write.new_value!r}")
    return lines


def _redirect_lines(
    plan: PushPlan, redirects: dict[str, str] | None, note: str | None
) -> list[str]:
    """Which planned Lead writes would go to the Contact their Lead converted into."""
    if redirects is None:
        return [note] if note else []
    moved = [w for w in plan.writes if w.object == LEAD.name and w.record_id in redirects]
    if not moved:
        return ["No planned write goes to a Lead converted since the last pull."]
    per_lead: dict[str, int] = defaultdict(int)
    for write in moved:
        per_lead[write.record_id] += 1
    contacts = {redirects[lead] for lead in per_lead}
    lines = [
        f"{len(moved):,} writes on {len(per_lead):,} Leads converted since the last pull would "
        f"go to the {len(contacts):,} Contacts they became:"
    ]
    for lead, count in sorted(per_lead.items())[:EXAMPLES]:
        lines.append(f"      Lead {lead} -> Contact {redirects[lead]}: {count:,} writes")
    return lines


def render_plan(
    plan: PushPlan, redirects: dict[str, str] | None = None, note: str | None = None
) -> str:
    """The plan per object and field (how many records change, a few examples, and why),
    where writes to converted Leads would go (``redirects``: Lead Id -> Contact Id, or
    ``note`` saying why that was not checked), the Leads to create, and the edits not sent."""
    if not plan.writes and not plan.creates and not plan.not_pushed:
        return "Nothing to push: the CRM already holds every score, opt-out flag and edit."
    lines = _write_lines(plan.writes) if plan.writes else ["No field writes."]
    lines += _redirect_lines(plan, redirects, note)
    if plan.creates:
        lines.append(
            f"{len(plan.creates):,} Leads to create (every mapped field, upserted on "
            f"{contact_id_field()} = the contact_id):"
        )
        for create in plan.creates[:EXAMPLES]:
            lines.append(f"      {create.email}: {', '.join(sorted(create.fields))}")
    not_sent: dict[tuple[str, str], int] = defaultdict(int)
    for decision in plan.not_pushed:
        not_sent[(decision.status, decision.reason)] += 1
    if not_sent:
        lines.append("Edits not sent:")
        for (status, reason), count in sorted(not_sent.items()):
            lines.append(f"  {count:,} {status.replace('_', ' ')}: {reason}")
    else:
        lines.append("Edits not sent: none (scores and opt-outs always push).")
    return "\n".join(lines)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing, anywhere.")
@friendly_errors
def push(dry_run: bool) -> None:
    """Write Act-On's scores, the opt-out list, allowed edits and requested Leads to the CRM
    (only values that differ from what the CRM holds)."""
    mapping = load_mapping(settings.mapping_dir())
    if dry_run:
        plan = plan_push(warehouse_engine(settings.warehouse_url()), mapping)
        redirects, note = None, None
        if any(w.object == LEAD.name for w in plan.writes):
            # Only the CRM knows which Leads converted since the last pull: a read, no write.
            try:
                with connected_crm() as client:
                    redirects = planned_redirects(client, plan)
            except (CrmUnavailable, SalesforceError) as error:
                note = f"Leads converted since the last pull not checked: {error}"
        click.echo(render_plan(plan, redirects, note))
        return
    run_id = run_or_exit("push_to_crm", "push")
    click.echo(f"The push finished (run {run_id}); see crm_push_log for every write.")
