"""What a push would write: pure functions from warehouse rows and the CRM's current values
(the mirror: what the last pull read plus what earlier pushes set) to planned CRM writes, and
:func:`plan_chunks`, which reads those rows from the warehouse a chunk at a time.

A value is written only where it differs from what the CRM holds. Act-On-side edits are
merged per field, three-way: an edit goes out only while the CRM still holds the value the
edit was made against (``crm_value_at_edit``); once the CRM changed that field, the CRM wins.

Scores and opt-out flags are compared with the mirror in the database: each chunk is the next
``PLAN_CHUNK`` CRM records (by ``contact_id``) whose score or flag differs there, so a push
never reads ``acton_contacts`` whole, and memory holds one chunk whatever the org's size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from collections.abc import Mapping as ReadOnly
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    and_,
    cast,
    false,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
)

from acton_pipelines.crm.mirror_values import (
    RECORD_MIRRORS,
    FieldRef,
    comparable_text,
    mirror_field_values,
)
from acton_pipelines.crm.objects import CONTACT, LEAD, split_hop
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping
from acton_pipelines.warehouse.tables import (
    acton_contacts_table,
    acton_field_edits,
    contact_scores,
    crm_column_name,
    crm_create_requests,
    opt_outs,
)

OPT_OUT_FIELD = "HasOptedOutOfEmail"

# crm_push_log.reason: why a write was made, in one word.
SCORE = "score"
OPT_OUT = "opt-out"
OPT_IN = "opt-in"
EDIT = "edit"
CREATE = "create"

# acton_field_edits.push_status values the push sets.
PUSHED = "pushed"
SUPERSEDED = "superseded"
SKIPPED_BY_POLICY = "skipped_by_policy"
FAILED = "failed"
# Edits the push still has to decide on (a failed write is tried again).
WAITING = ("pending", FAILED)

# The CRM's current value of each field of each record, as comparable text; a field or record
# the mirror does not hold is absent (its value is unknown).
CrmValues = ReadOnly[FieldRef, str | None]


@dataclass(frozen=True)
class PlannedWrite:
    """One field of one CRM record to set, and why."""

    object: str
    record_id: str
    contact_id: str
    field: str
    # The CRM's value before the write (comparable text; None when empty or unknown).
    old_value: Any
    new_value: Any
    reason: str
    # The longer why: the score sheet, the Act-On field, what the CRM held...
    detail: str = ""
    # The Act-On-side edit this write carries (acton_field_edits.id), if any.
    edit_id: int | None = None

    @property
    def ref(self) -> FieldRef:
        """The CRM field this write sets: (object, record Id, field API name)."""
        return (self.object, self.record_id, self.field)


@dataclass(frozen=True)
class EditDecision:
    """What becomes of a waiting Act-On-side edit that is not sent: ``skipped_by_policy``,
    ``superseded`` (a later edit, or the CRM changed the field since), or ``pushed`` (the CRM
    already holds its value)."""

    edit_id: int
    status: str
    # Short enough to group decisions by (the dry run counts them per reason).
    reason: str
    # The values involved, for ``status_reason``.
    detail: str | None = None
    # A write the CRM's own change made moot: logged with outcome "superseded", never sent.
    unsent: PlannedWrite | None = None

    @property
    def status_reason(self) -> str:
        """``acton_field_edits.status_reason``: the reason and its values."""
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


@dataclass(frozen=True)
class PlannedCreate:
    """A CRM Lead to create for an Act-On contact designated "create in CRM"."""

    contact_id: str
    email: str
    fields: dict[str, Any]


def lead_fields(row: pd.Series, mapping: Mapping) -> dict[str, Any]:
    """Every mapped field of a new Lead (allow_push does not apply to records we create)."""
    values = {}
    for mapped in mapping.fields:
        source = mapped.lead
        if not source or split_hop(source)[0] is not None or mapped.column not in row.index:
            continue
        value = row[mapped.column]
        if not pd.isna(value):
            values[source] = crm_value(value, mapped.type)
    return values


def comparable(value: Any, data_type: DataType | None = None) -> str | None:
    """A value as the CRM would hold it, as comparable text (:func:`comparable_text`): what a
    planned value is compared with in the mirror. Datetimes go out as Salesforce text and are
    compared as instants."""
    if data_type is DataType.DATETIME and isinstance(value, str):
        return comparable_text(pd.Timestamp(value).to_pydatetime())
    return comparable_text(value)


def crm_value(value: Any, data_type: DataType) -> Any:
    """An edit's text value as the CRM's JSON wants it (None clears the field)."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    text = str(value)
    if data_type in (DataType.NUMBER,):
        return float(text)
    if data_type is DataType.SCORE:
        return int(float(text))
    if data_type is DataType.BOOLEAN:
        return text.strip().lower() in ("true", "1", "yes", "1.0")
    if data_type is DataType.DATE:
        return pd.Timestamp(text).date().isoformat()
    if data_type is DataType.DATETIME:
        stamp = pd.Timestamp(text)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return text


def _latest_edits(edits: pd.DataFrame) -> tuple[pd.DataFrame, list[EditDecision]]:
    """Per contact and field the latest edit; the older ones are superseded by it."""
    ordered = edits.sort_values(["changed_at", "id"])
    latest = ordered.groupby(["contact_id", "field"]).tail(1)
    older = [
        EditDecision(int(edit_id), SUPERSEDED, "a later edit of the field")
        for edit_id in ordered.loc[~ordered["id"].isin(latest["id"]), "id"]
    ]
    return latest, older


def _policy_reason(
    field: FieldMapping | None, contact: pd.Series | None, mapping: Mapping
) -> str | None:
    """Why an edit cannot update the contact's CRM record, or None when it may."""
    if field is None or contact is None:
        return "no longer mapped"
    if pd.isna(contact["external_id"]):
        return "not a CRM record"
    source = field.source(contact["record_type"])
    if source is None:
        return f"no CRM field on {contact['record_type']}"
    if "." in source:
        return f"read through {source}: not a field of the record"
    allowed = field.allow_push if field.allow_push is not None else mapping.push_policy == "two_way"
    if not allowed:
        return "allow_push is off" if field.allow_push is False else "push policy pull_only"
    return None


def _edited_ref(field: FieldMapping | None, contact: pd.Series | None) -> FieldRef | None:
    """The CRM field an edit changes on its contact's record; None when the contact has no CRM
    record, or its record no field of its own for the edit."""
    if field is None or contact is None:
        return None
    record_type, external_id = contact["record_type"], contact["external_id"]
    if pd.isna(external_id) or pd.isna(record_type):
        return None
    source = field.source(record_type)
    if source is None or "." in source:
        return None
    return (record_type, external_id, source)


def _contact(by_contact: pd.DataFrame, contact_id: str) -> pd.Series | None:
    return by_contact.loc[contact_id] if contact_id in by_contact.index else None


def edit_refs(edits: pd.DataFrame, contacts: pd.DataFrame, mapping: Mapping) -> set[FieldRef]:
    """The CRM fields :func:`edit_writes` compares: the edited field of each edited record."""
    by_contact = contacts.set_index("contact_id")
    refs = {
        _edited_ref(mapping.field(row.field), _contact(by_contact, row.contact_id))
        for row in edits.itertuples(index=False)
    }
    return {ref for ref in refs if ref is not None}


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


def edit_writes(
    edits: pd.DataFrame, contacts: pd.DataFrame, mapping: Mapping, crm: CrmValues
) -> tuple[list[PlannedWrite], list[EditDecision]]:
    """Waiting Act-On-side edits as CRM updates, and the edits that are not sent, with why.

    ``edits``: ``id, contact_id, field, value, changed_at, crm_value_at_edit`` (pending and
    failed ones); ``contacts``: ``contact_id, external_id, record_type``. Per contact and field
    only the latest edit counts. ``allow_push`` (or the push policy) governs updates of
    existing records; a field read through a relationship (``Account.Name``) or with no CRM
    field for the record's type cannot be pushed. Then the three-way merge, per field: the
    edit goes out while the CRM still holds ``crm_value_at_edit``; once the CRM changed the
    field, the edit is superseded (the CRM wins). Changes to other fields never matter. A
    value the mirror does not know counts as unchanged.
    """
    if edits.empty:
        return [], []
    by_contact = contacts.set_index("contact_id")
    latest, decisions = _latest_edits(edits)
    writes: list[PlannedWrite] = []
    for row in latest.itertuples(index=False):
        field = mapping.field(row.field)
        contact = _contact(by_contact, row.contact_id)
        blocked = _policy_reason(field, contact, mapping)
        ref = _edited_ref(field, contact)
        if blocked or ref is None or field is None:
            reason = blocked or "not a field of the record"
            decisions.append(EditDecision(int(row.id), SKIPPED_BY_POLICY, reason))
            continue
        write = PlannedWrite(
            object=ref[0],
            record_id=ref[1],
            contact_id=row.contact_id,
            field=ref[2],
            old_value=None,
            new_value=crm_value(row.value, field.type),
            reason=EDIT,
            detail=f"Act-On edit of {field.destination}",
            edit_id=int(row.id),
        )
        at_edit = None if pd.isna(row.crm_value_at_edit) else str(row.crm_value_at_edit)
        decided = _three_way(write, at_edit, crm, field.type)
        if isinstance(decided, PlannedWrite):
            writes.append(decided)
        else:
            decisions.append(decided)
    return writes, decisions


def _three_way(
    write: PlannedWrite, at_edit: str | None, crm: CrmValues, data_type: DataType
) -> PlannedWrite | EditDecision:
    """The edit's write if the CRM still holds the value the edit was made against (with that
    value as the write's old value), else why it is not sent."""
    if write.ref not in crm:
        return write
    now = crm[write.ref]
    assert write.edit_id is not None
    wanted = comparable(write.new_value, data_type)
    if now != at_edit:
        values = (
            f"the CRM held {_shown(at_edit)} when the edit was made and holds {_shown(now)} "
            f"now; the edit's {_shown(wanted)} was not sent"
        )
        unsent = replace(write, old_value=now, detail=f"{write.detail}: {values}")
        return EditDecision(
            write.edit_id, SUPERSEDED, "the CRM changed the field since the edit", values, unsent
        )
    if now == wanted:
        return EditDecision(write.edit_id, PUSHED, "the CRM already holds the value")
    return replace(write, old_value=now)


@dataclass
class PushPlan:
    """Writes, creates and settled edits, computed without writing anything: the whole plan
    (``acton push --dry-run``) or one chunk of it (what a push sends before reading more)."""

    writes: list[PlannedWrite]
    creates: list[PlannedCreate] = dataclasses.field(default_factory=list)
    # Waiting edits that are not sent, and why (settled by the push).
    not_pushed: list[EditDecision] = dataclasses.field(default_factory=list)

    @property
    def superseded_by_crm(self) -> list[EditDecision]:
        """Edits the CRM's own change of the field made moot (the CRM wins)."""
        return [d for d in self.not_pushed if d.unsent is not None]


# CRM records (or edited contacts, or create requests) read per chunk: each chunk is planned,
# sent and recorded before the next is read. 10,000 records make one Bulk job of about 1 MB
# of CSV (Salesforce processes a job in batches of 10,000 records).
PLAN_CHUNK = 10_000


def plan_chunks(engine: Engine, mapping: Mapping, size: int | None = None) -> Iterator[PushPlan]:
    """The push's plan, one chunk at a time: the score and opt-out writes of Leads, then of
    Contacts, then the waiting edits, then the Leads to create (``size`` records, edited
    contacts or requests a chunk; default ``PLAN_CHUNK``).

    Each chunk is read when the caller asks for the next one, on a connection of its own and
    after the rows before it by key (keyset pagination), so what the push records between
    two chunks never shifts the next one. Reads only: a missing table plans nothing of its
    kind, and nothing is created (``acton push --dry-run`` writes nothing, anywhere).
    """
    size = size or PLAN_CHUNK
    present = set(inspect(engine).get_table_names())
    if acton_contacts_table(mapping).name not in present:
        return
    for record_type in (LEAD.name, CONTACT.name):
        yield from _value_chunks(engine, mapping, present, record_type, size)
    yield from _edit_chunks(engine, mapping, present, size)
    yield from _create_chunks(engine, mapping, present, size)


def _frame(conn: Connection, statement: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in conn.execute(statement)], columns=columns)


def _score_differs(held: ColumnElement[Any], score: ColumnElement[Any]) -> ColumnElement[bool]:
    """Where the mirror's value may differ from the score: never narrower than the exact
    comparison made in Python (:func:`comparable`), which has the last word on every row."""
    if isinstance(held.type, Numeric):
        return or_(held.is_(None), held != score)
    if isinstance(held.type, String):
        return or_(held.is_(None), held != cast(score, held.type))
    return true()


def _flag_differs(held: ColumnElement[Any], wanted: ColumnElement[Any]) -> ColumnElement[bool]:
    """Where the CRM's opt-out flag may differ from the list's (an empty flag counts as off)."""
    if isinstance(held.type, Boolean):
        return wanted != func.coalesce(held, false())
    return true()


@dataclass(frozen=True)
class _ScoreColumn:
    """A score field as a chunk query selects it: the sheet's score beside the mirror's value."""

    field: FieldMapping
    api_name: str
    score: str
    held: str


class _ValueQuery:
    """The query of one record type's chunks: its CRM records (joined to the mirror) whose
    score fields or opt-out flag may differ from what Act-On holds, ordered by contact_id."""

    def __init__(
        self, conn: Connection, mapping: Mapping, present: set[str], record_type: str
    ) -> None:
        self.record_type = record_type
        self.scores: list[_ScoreColumn] = []
        self.opt_outs = False
        contacts = acton_contacts_table(mapping)
        self.contacts = contacts
        mirror = Table(RECORD_MIRRORS[record_type], MetaData(), autoload_with=conn)
        joined: FromClause = contacts.join(mirror, mirror.c.id == contacts.c.external_id)
        columns: list[ColumnElement[Any]] = [
            contacts.c.contact_id,
            contacts.c.external_id,
        ]
        differs: list[ColumnElement[bool]] = []
        if contact_scores.name in present:
            for index, mapped in enumerate(mapping.score_fields):
                api_name = mapped.source(record_type)  # type: ignore[arg-type]
                if not api_name or crm_column_name(api_name) not in mirror.c:
                    continue
                sheet = contact_scores.alias(f"sheet_{index}")
                joined = joined.outerjoin(
                    sheet,
                    and_(
                        sheet.c.contact_id == contacts.c.contact_id,
                        sheet.c.score_sheet == mapped.score_sheet,
                    ),
                )
                held = mirror.c[crm_column_name(api_name)]
                column = _ScoreColumn(mapped, api_name, f"score_{index}", f"held_{index}")
                columns += [sheet.c.score.label(column.score), held.label(column.held)]
                differs.append(
                    and_(sheet.c.score.is_not(None), _score_differs(held, sheet.c.score))
                )
                self.scores.append(column)
        flag = crm_column_name(OPT_OUT_FIELD)
        if opt_outs.name in present and "email" in contacts.c and flag in mirror.c:
            listed = opt_outs.alias("listed")
            # The list holds addresses lower-cased, as the pull and the imports put them there.
            joined = joined.outerjoin(listed, listed.c.email == func.lower(contacts.c.email))
            columns += [
                listed.c.opted_out.label("listed_opted_out"),
                mirror.c[flag].label("held_opted_out"),
            ]
            differs.append(
                and_(
                    listed.c.opted_out.is_not(None),
                    _flag_differs(mirror.c[flag], listed.c.opted_out),
                )
            )
            self.opt_outs = True
        self.statement: Select[Any] | None = None
        if differs:
            self.statement = (
                select(*columns)
                .select_from(joined)
                .where(contacts.c.record_type == record_type, or_(*differs))
                .order_by(contacts.c.contact_id)
            )

    def chunk(self, conn: Connection, after: str | None, size: int) -> list[Any]:
        """The next ``size`` rows after contact_id ``after`` (from the first when None)."""
        assert self.statement is not None
        statement = self.statement.limit(size)
        if after is not None:
            statement = statement.where(self.contacts.c.contact_id > after)
        return list(conn.execute(statement))

    def writes(self, rows: list[Any]) -> list[PlannedWrite]:
        """The writes of a chunk's rows: each value that differs, compared exactly."""
        writes: list[PlannedWrite] = []
        for row in rows:
            values = row._mapping
            for column in self.scores:
                write = _score_write(self.record_type, row, values, column)
                if write is not None:
                    writes.append(write)
            if self.opt_outs:
                write = _opt_out_write(self.record_type, row, values)
                if write is not None:
                    writes.append(write)
        return writes


def _score_write(
    record_type: str, row: Any, values: ReadOnly[str, Any], column: _ScoreColumn
) -> PlannedWrite | None:
    """A score field whose CRM value differs from its sheet's computed score. Score fields
    always push, whatever the push policy."""
    if values[column.score] is None:
        return None
    score = int(values[column.score])
    held = comparable_text(values[column.held])
    if held == comparable(score):
        return None
    return PlannedWrite(
        object=record_type,
        record_id=row.external_id,
        contact_id=row.contact_id,
        field=column.api_name,
        old_value=held,
        new_value=score,
        reason=SCORE,
        detail=f"{column.field.destination}, score sheet {column.field.score_sheet}",
    )


def _opt_out_write(record_type: str, row: Any, values: ReadOnly[str, Any]) -> PlannedWrite | None:
    """``HasOptedOutOfEmail`` where the address is on the opt-out list and the CRM's flag
    differs: true for addresses opted out, false for those that opted back in on the Act-On
    side. Addresses not on the list are left alone (the list is the pull's and the imports'
    to keep: the push only sends it)."""
    if values["listed_opted_out"] is None:
        return None
    wanted = bool(values["listed_opted_out"])
    held = comparable_text(values["held_opted_out"])
    if wanted == (held == "true"):
        return None
    return PlannedWrite(
        object=record_type,
        record_id=row.external_id,
        contact_id=row.contact_id,
        field=OPT_OUT_FIELD,
        old_value=held,
        new_value=wanted,
        reason=OPT_OUT if wanted else OPT_IN,
        detail=(
            "the address is on the opt-out list"
            if wanted
            else "the address opted back in on the Act-On side"
        ),
    )


def _value_chunks(
    engine: Engine, mapping: Mapping, present: set[str], record_type: str, size: int
) -> Iterator[PushPlan]:
    """The score and opt-out writes of one record type, ``size`` CRM records a chunk. A
    record the mirror does not hold yet (a Lead this push created) waits for the pull."""
    if RECORD_MIRRORS[record_type] not in present:
        return
    with engine.connect() as conn:
        query = _ValueQuery(conn, mapping, present, record_type)
    if query.statement is None:
        return
    after: str | None = None
    while True:
        with engine.connect() as conn:
            rows = query.chunk(conn, after, size)
        if not rows:
            return
        yield PushPlan(writes=query.writes(rows))
        if len(rows) < size:
            return
        after = rows[-1].contact_id


EDIT_COLUMNS = ["id", "contact_id", "field", "value", "changed_at", "crm_value_at_edit"]
CONTACT_COLUMNS = ["contact_id", "external_id", "record_type", "email"]


def _edit_chunks(
    engine: Engine, mapping: Mapping, present: set[str], size: int
) -> Iterator[PushPlan]:
    """The waiting edits (pending, or failed and tried again) of ``size`` contacts a chunk:
    all of a contact's edits in the same chunk, so the latest per field is found."""
    if acton_field_edits.name not in present:
        return
    contacts = acton_contacts_table(mapping)
    edits = acton_field_edits
    waiting = edits.c.push_status.in_(WAITING)
    # A warehouse from before crm_value_at_edit existed (not yet migrated by a run): NULL.
    stored = {c["name"] for c in inspect(engine).get_columns(edits.name)}
    selected = [edits.c[c] if c in stored else literal(None).label(c) for c in EDIT_COLUMNS]
    after: str | None = None
    while True:
        with engine.connect() as conn:
            keys = select(edits.c.contact_id).where(waiting).distinct()
            if after is not None:
                keys = keys.where(edits.c.contact_id > after)
            edited = list(conn.execute(keys.order_by(edits.c.contact_id).limit(size)).scalars())
            if not edited:
                return
            in_chunk = [waiting, edits.c.contact_id <= edited[-1]]
            if after is not None:
                in_chunk.append(edits.c.contact_id > after)
            chunk_edits = _frame(conn, select(*selected).where(*in_chunk), EDIT_COLUMNS)
            chunk_contacts = _frame(
                conn,
                select(*[contacts.c[c] for c in CONTACT_COLUMNS]).where(
                    contacts.c.contact_id.in_(select(edits.c.contact_id).where(*in_chunk))
                ),
                CONTACT_COLUMNS,
            )
            crm = mirror_field_values(conn, edit_refs(chunk_edits, chunk_contacts, mapping))
        updates, not_pushed = edit_writes(chunk_edits, chunk_contacts, mapping, crm)
        yield PushPlan(writes=updates, not_pushed=not_pushed)
        if len(edited) < size:
            return
        after = edited[-1]


def _create_chunks(
    engine: Engine, mapping: Mapping, present: set[str], size: int
) -> Iterator[PushPlan]:
    """The pending "create in CRM" requests of contacts not in the CRM yet, with every mapped
    field, ``size`` requests a chunk."""
    if crm_create_requests.name not in present:
        return
    contacts = acton_contacts_table(mapping)
    statement = (
        select(contacts)
        .join(crm_create_requests, crm_create_requests.c.contact_id == contacts.c.contact_id)
        .where(crm_create_requests.c.status == "pending", contacts.c.external_id.is_(None))
        .order_by(contacts.c.contact_id)
        .limit(size)
    )
    columns = [c.name for c in contacts.columns]
    after: str | None = None
    while True:
        page = statement if after is None else statement.where(contacts.c.contact_id > after)
        with engine.connect() as conn:
            rows = _frame(conn, page, columns)
        if rows.empty:
            return
        yield PushPlan(
            writes=[],
            creates=[
                PlannedCreate(row.contact_id, row.email, lead_fields(row, mapping))
                for _, row in rows.iterrows()
            ],
        )
        if len(rows) < size:
            return
        after = str(rows["contact_id"].iloc[-1])
