"""Act-On's side of a CRM sync: the CRM's opt-outs join the opt-out list, and Act-On's own
values (Act-On-only fields, edits the CRM has not overtaken) survive the staged CRM values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Connection,
    DateTime,
    Row,
    Table,
    bindparam,
    exists,
    false,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
    update,
)

from acton_pipelines.crm.mirror_values import FieldRef, mirror_field_values
from acton_pipelines.crm.objects import split_hop
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping
from acton_pipelines.warehouse.staged_load import dialect_insert
from acton_pipelines.warehouse.tables import acton_field_edits, opt_outs

# Edits still waiting for the push: the ones a pull may keep in acton_contacts.
WAITING_EDITS = ("pending", "failed")


def typed_value(text: Any, data_type: DataType) -> Any:
    """An edit's text as the value its ``acton_contacts`` column stores."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or text == "":
        return None
    value = str(text).strip()
    if data_type is DataType.NUMBER:
        return float(value)
    if data_type is DataType.SCORE:
        return int(float(value))
    if data_type is DataType.BOOLEAN:
        return value.lower() in ("true", "1", "yes", "1.0")
    if data_type is DataType.DATE:
        return pd.Timestamp(value).date()
    if data_type is DataType.DATETIME:
        stamp = pd.Timestamp(value)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()
    return value.lower() if data_type is DataType.EMAIL else value


@dataclass(frozen=True)
class CrmOptOuts:
    """What one pull did to the opt-out list."""

    added: int = 0
    opted_out_again: int = 0


def _flagged(stage: Table) -> Any:
    # HasOptedOutOfEmail as staged from the CRM, on a record with an address to list.
    return (stage.c.opted_out == true()) & stage.c.email.is_not(None)


def record_crm_opt_outs(conn: Connection, stage: Table, run_id: str, now: datetime) -> CrmOptOuts:
    """Put the address of every staged CRM record flagged HasOptedOutOfEmail on ``opt_outs``.

    Call it on the stage as the CRM gave it: before a duplicate record is dropped (its flag
    counts too) and before :func:`keep_act_on_values` replaces the flags with the list's. A
    pull only adds or re-confirms: a flag the CRM clears later never removes an address. An
    address that opted back in on the Act-On side is opted out again when its record was
    flagged at or after that opt-in (the most recent change wins; ties go to the CRM).
    """
    email = func.lower(stage.c.email)
    # One row per address: the record that flagged it first (then the lowest Id) names it.
    first = func.row_number().over(
        partition_by=email, order_by=(stage.c.crm_modified_at, stage.c.external_id)
    )
    flagged = (
        select(
            email.label("email"),
            stage.c.record_type,
            stage.c.external_id,
            stage.c.crm_modified_at,
            first.label("rank"),
        )
        .where(_flagged(stage))
        .subquery("flagged")
    )
    rows = select(
        flagged.c.email,
        literal(True),
        literal("crm"),
        literal(now, DateTime(timezone=True)),
        flagged.c.crm_modified_at,
        literal(run_id),
        flagged.c.record_type,
        flagged.c.external_id,
    ).where(flagged.c.rank == 1)
    columns = [
        "email",
        "opted_out",
        "source",
        "added_at",
        "changed_at",
        "sync_run_id",
        "crm_object",
        "crm_record_id",
    ]
    insert = dialect_insert(conn, opt_outs).from_select(columns, rows)
    added = conn.execute(insert.on_conflict_do_nothing(index_elements=["email"])).rowcount or 0
    return CrmOptOuts(added=added, opted_out_again=_opt_out_again(conn, stage, run_id))


def _opt_out_again(conn: Connection, stage: Table, run_id: str) -> int:
    """Opt out again the listed addresses that opted back in before the CRM flagged them."""
    flagged_since = (
        select(func.max(stage.c.crm_modified_at))
        .where(
            _flagged(stage),
            func.lower(stage.c.email) == opt_outs.c.email,
            stage.c.crm_modified_at >= opt_outs.c.changed_at,
        )
        .scalar_subquery()
    )
    statement = (
        update(opt_outs)
        .where(opt_outs.c.opted_out == false(), flagged_since.is_not(None))
        .values(opted_out=True, changed_at=flagged_since, sync_run_id=run_id)
    )
    return conn.execute(statement).rowcount or 0


def opt_out_listed_contacts(conn: Connection, target: Table, run_id: str, now: datetime) -> int:
    """Set ``opted_out`` on every contact of an address this build put (back) on the opt-out
    list, staged or not (another record with the address, an Act-On-only contact), and mark
    them as written by this run so the builds downstream re-evaluate them; returns how many."""
    listed_now = select(opt_outs.c.email).where(
        opt_outs.c.sync_run_id == run_id, opt_outs.c.opted_out == true()
    )
    statement = (
        update(target)
        .where(
            target.c.email.in_(listed_now),
            or_(target.c.opted_out.is_(None), target.c.opted_out == false()),
        )
        .values(opted_out=True, sync_run_id=run_id, updated_at=now)
    )
    return conn.execute(statement).rowcount or 0


def keep_act_on_values(conn: Connection, stage: Table, target: Table, mapping: Mapping) -> None:
    """Before staged CRM values are merged into ``acton_contacts``:

    - an Act-On-only field (no CRM source on Leads or Contacts) keeps the value Act-On holds:
      the CRM has no say in it;
    - an Act-On-side edit still waiting for the push keeps its value while the CRM still holds
      the value the edit was made against (three-way, per field: a CRM change of another field
      does not matter); once the CRM changed that field, the CRM's value stands (the push then
      marks the edit superseded). Where the CRM's current value cannot be known (a field
      through a relationship, a field the mirror lacks), the edit stands when it is later than
      the record's last CRM change (ties go to the CRM);
    - ``opted_out`` follows the opt-out list (``opt_outs``) for the addresses on it: the push
      brings the CRM's flag in line, the list is what Act-On goes by.
    """
    for field in mapping.fields:
        if field.lead is None and field.contact is None:
            kept = (
                select(target.c[field.column])
                .where(target.c.contact_id == stage.c.contact_id)
                .scalar_subquery()
            )
            conn.execute(update(stage).values({field.column: kept}))
    present = set(inspect(conn).get_table_names())
    if opt_outs.name in present:
        listed = (
            select(opt_outs.c.opted_out)
            .where(opt_outs.c.email == func.lower(stage.c.email))
            .scalar_subquery()
        )
        on_list = exists(
            select(opt_outs.c.email).where(opt_outs.c.email == func.lower(stage.c.email))
        )
        conn.execute(update(stage).where(on_list).values(opted_out=listed))
    if acton_field_edits.name in present:
        _keep_waiting_edits(conn, stage, mapping)


def _waiting_edits(conn: Connection, stage: Table) -> list[Row]:
    """The newest waiting edit per staged contact and column, with the contact's CRM record."""
    edits = acton_field_edits
    rows = conn.execute(
        select(
            edits.c.id,
            edits.c.contact_id,
            edits.c.field,
            edits.c.column,
            edits.c.value,
            edits.c.changed_at,
            edits.c.crm_value_at_edit,
            stage.c.record_type,
            stage.c.external_id,
        )
        .join(stage, stage.c.contact_id == edits.c.contact_id)
        .where(edits.c.push_status.in_(WAITING_EDITS))
        .order_by(edits.c.changed_at, edits.c.id)
    ).all()
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:  # ordered oldest first: the newest of each key is written last
        latest[(row.contact_id, row.column)] = row
    return list(latest.values())


def _crm_field(field: FieldMapping, edit: Row) -> FieldRef | None:
    """The CRM field whose mirrored value decides ``edit``, or ``None`` when the mirror cannot
    tell (no CRM record, no source on this object, or a field through a relationship)."""
    if edit.record_type not in ("Lead", "Contact") or edit.external_id is None:
        return None
    source = field.source(edit.record_type)
    if source is None or split_hop(source)[0] is not None:
        return None
    return (edit.record_type, edit.external_id, source)


def _keep_waiting_edits(conn: Connection, stage: Table, mapping: Mapping) -> None:
    """Write into the stage the waiting edits that stand against the CRM's current values."""
    decided: list[tuple[FieldMapping, Row, FieldRef | None]] = []
    for edit in _waiting_edits(conn, stage):
        field = mapping.field(edit.field)
        if field is not None and field.column in stage.c:
            decided.append((field, edit, _crm_field(field, edit)))
    crm_values = mirror_field_values(conn, [ref for _, _, ref in decided if ref is not None])
    unchanged: dict[str, list[dict[str, Any]]] = {}
    by_time: dict[str, list[dict[str, Any]]] = {}
    fields: dict[str, FieldMapping] = {}
    for field, edit, ref in decided:
        fields[field.column] = field
        values = {"b_contact_id": edit.contact_id, "b_value": typed_value(edit.value, field.type)}
        if ref is not None and ref in crm_values:
            if crm_values[ref] == edit.crm_value_at_edit:
                unchanged.setdefault(field.column, []).append(values)
        else:
            by_time.setdefault(field.column, []).append(values | {"b_at": edit.changed_at})
    for column, values in unchanged.items():
        _write_edits(conn, stage, fields[column], values, later_than_crm=False)
    for column, values in by_time.items():
        _write_edits(conn, stage, fields[column], values, later_than_crm=True)


def _write_edits(
    conn: Connection,
    stage: Table,
    field: FieldMapping,
    values: Iterable[dict[str, Any]],
    *,
    later_than_crm: bool,
) -> None:
    """One batched UPDATE of ``field``'s column for the given contacts; ``later_than_crm``
    writes only where the edit is later than the record's last CRM change."""
    column = stage.c[field.column]
    condition = stage.c.contact_id == bindparam("b_contact_id")
    if later_than_crm:
        at = bindparam("b_at", type_=DateTime(timezone=True))
        condition = condition & or_(stage.c.crm_modified_at.is_(None), stage.c.crm_modified_at < at)
    statement = (
        update(stage)
        .where(condition)
        .values({field.column: bindparam("b_value", type_=column.type)})
    )
    conn.execute(statement, list(values))
