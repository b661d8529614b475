"""The CRM records that become Act-On contacts, as SQL over the CRM mirror tables.

Every unconverted Lead and every Contact is one Act-On contact (a converted Lead lives on as the
Contact it became). Company, account type, owner and an opportunity summary are linked from the
related objects; mapped fields come from the record, or through ``Account.`` / ``Owner.`` hops
from the mirrored Account and User.

A contact keeps its ``contact_id`` for life: each record takes the id the warehouse already gives
it (by ``acton_contacts.external_id``), a Contact else the id of the Lead it was converted from;
only a record the warehouse has never seen gets a new id (see :func:`lead_candidates`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from sqlalchemy import (
    Engine,
    MetaData,
    Select,
    Table,
    case,
    false,
    func,
    inspect,
    literal,
    null,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect, Subquery

from acton_pipelines.crm.objects import (
    ACCOUNT,
    CONTACT,
    CRM_OBJECTS,
    LEAD,
    OPPORTUNITY,
    USER,
    split_hop,
)
from acton_pipelines.errors import UserError
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.tables import crm_column_name, sync_deletions


class MirrorMissing(UserError, RuntimeError):
    """A CRM mirror table the build needs is not in the warehouse yet."""


def mirror_tables(engine: Engine) -> dict[str, Table]:
    """The CRM mirror tables as they are in the warehouse (their columns follow the mapping)."""
    present = set(inspect(engine).get_table_names())
    missing = [o.table for o in CRM_OBJECTS if o.table not in present]
    if missing:
        raise MirrorMissing(
            f"the warehouse has no {', '.join(missing)} yet: materialize the CRM assets first "
            "(`acton sync full`, or select the 'crm' group in the Dagster UI)."
        )
    metadata = MetaData()
    return {o.table: Table(o.table, metadata, autoload_with=engine) for o in CRM_OBJECTS}


def _column(table: Table, api_name: str) -> ColumnElement:
    name = crm_column_name(api_name)
    if name not in table.c:
        raise MirrorMissing(
            f"{table.name} has no column '{name}' for CRM field '{api_name}': the mapping changed "
            "since the last CRM sync; run a full sync (`acton sync full`)."
        )
    return table.c[name]


def _opportunity_summary(opportunities: Table) -> Subquery:
    o = opportunities.c
    amount = func.coalesce(o.amount, 0)
    return (
        select(
            o.accountid.label("account_id"),
            func.count().label("opportunity_count"),
            func.sum(case((o.isclosed == false(), amount), else_=0)).label("open_amount"),
            func.sum(case((o.iswon == literal(True), 1), else_=0)).label("won_count"),
            func.sum(case((o.iswon == literal(True), amount), else_=0)).label("won_amount"),
        )
        .where(o.accountid.is_not(None))
        .group_by(o.accountid)
        .subquery("opportunity_summary")
    )


def _mapped_columns(
    mapping: Mapping, record_type: str, record: Table, joined: dict[str, Table]
) -> list[ColumnElement]:
    columns = []
    for field in mapping.fields:
        source = field.source(record_type)  # type: ignore[arg-type]
        if source is None:
            columns.append(null().label(field.column))
            continue
        relationship, name = split_hop(source)
        if relationship is None:
            expression = _column(record, source)
        elif relationship in joined:
            expression = _column(joined[relationship], name)
        else:
            expression = _column(record, source)
        columns.append(expression.label(field.column))
    return columns


def _converted_from(leads: Table) -> Subquery:
    """The Lead each Contact was converted from (the first, when several were)."""
    return (
        select(
            leads.c.convertedcontactid.label("contact_id"), func.min(leads.c.id).label("lead_id")
        )
        .where(leads.c.isconverted == literal(True), leads.c.convertedcontactid.is_not(None))
        .group_by(leads.c.convertedcontactid)
        .subquery("converted_from")
    )


def _known_contact_id(known: Table | None, record_id: ColumnElement) -> ScalarSelect | None:
    """The ``contact_id`` the warehouse already gives the CRM record ``record_id`` (one lookup
    on the indexed ``acton_contacts.external_id``), or ``None`` without a warehouse to ask."""
    if known is None:
        return None
    return (
        select(func.min(known.c.contact_id))
        .where(known.c.external_id == record_id)
        .scalar_subquery()
    )


def _first_set(*ids: ColumnElement | ScalarSelect | None) -> ColumnElement:
    """The first of ``ids`` that is not NULL (lookups in the warehouse first, defaults last);
    ``None`` entries (no warehouse to look in) are left out."""
    present = [i for i in ids if i is not None]
    return func.coalesce(*present) if len(present) > 1 else present[0]


def touched_by_runs(tables: dict[str, Table], runs: Select) -> dict[str, ColumnElement[bool]]:
    """Per candidate query, the condition selecting the records whose Act-On contact the CRM
    changes of ``runs`` (a ``SELECT run_id``) may have changed: the record itself, its owner,
    its account, the account's opportunities (changed or deleted), and a Contact a Lead was
    just converted into."""
    lead, contact = tables[LEAD.table], tables[CONTACT.table]
    account, user = tables[ACCOUNT.table], tables[USER.table]
    opportunity = tables[OPPORTUNITY.table]
    owners = select(user.c.id).where(user.c.sync_run_id.in_(runs))
    accounts = union(
        select(account.c.id).where(account.c.sync_run_id.in_(runs)),
        select(opportunity.c.accountid).where(opportunity.c.sync_run_id.in_(runs)),
        select(sync_deletions.c.account_id).where(
            sync_deletions.c.sync_run_id.in_(runs), sync_deletions.c.account_id.is_not(None)
        ),
    )
    converted_into = select(lead.c.convertedcontactid).where(
        lead.c.sync_run_id.in_(runs), lead.c.convertedcontactid.is_not(None)
    )
    return {
        LEAD.table: or_(lead.c.sync_run_id.in_(runs), lead.c.ownerid.in_(owners)),
        CONTACT.table: or_(
            contact.c.sync_run_id.in_(runs),
            contact.c.ownerid.in_(owners),
            contact.c.accountid.in_(accounts),
            contact.c.id.in_(converted_into),
        ),
    }


def _owner_name(lead: Table, user: Table) -> ColumnElement:
    # A queue-owned Lead has no User owner: the mirror's Owner.Name (when the CRM sync reads
    # it) is then the queue's name.
    if "owner__name" in lead.c:
        return func.coalesce(user.c.name, lead.c.owner__name)
    return user.c.name


def lead_candidates(
    tables: dict[str, Table],
    mapping: Mapping,
    scope: ColumnElement[bool] | None = None,
    known: Table | None = None,
) -> Select:
    """Unconverted Leads with their owner (those matching ``scope``, when given).

    ``known`` is ``acton_contacts`` as it is: a Lead keeps the ``contact_id`` it has there (an
    Act-On-only contact the push created in the CRM stays ``acton:<email>``); a new Lead's is its
    Id.
    """
    lead, user = tables[LEAD.table], tables[USER.table]
    return (
        select(
            _first_set(_known_contact_id(known, lead.c.id), lead.c.id).label("contact_id"),
            lead.c.id.label("external_id"),
            literal("Lead").label("record_type"),
            null().label("account_id"),
            null().label("account_name"),
            null().label("account_type"),
            lead.c.ownerid.label("owner_id"),
            _owner_name(lead, user).label("owner_name"),
            user.c.email.label("owner_email"),
            null().label("opportunity_count"),
            null().label("open_opportunity_amount"),
            null().label("won_opportunity_count"),
            null().label("won_opportunity_amount"),
            lead.c.hasoptedoutofemail.label("opted_out"),
            literal("crm").label("source"),
            lead.c.systemmodstamp.label("crm_modified_at"),
            *_mapped_columns(mapping, "Lead", lead, {"Owner": user}),
        )
        .select_from(lead.outerjoin(user, user.c.id == lead.c.ownerid))
        .where(func.coalesce(lead.c.isconverted, false()) == false())
        .where(true() if scope is None else scope)
        .order_by(lead.c.id)
    )


def contact_candidates(
    tables: dict[str, Table],
    mapping: Mapping,
    scope: ColumnElement[bool] | None = None,
    known: Table | None = None,
) -> Select:
    """Contacts with their account, owner and the account's opportunity summary (those
    matching ``scope``, when given).

    ``known`` is ``acton_contacts`` as it is. A Contact keeps the ``contact_id`` it has there;
    a Contact new to the warehouse that a Lead was converted into takes the Lead's contact's
    ``contact_id`` (the Act-On contact continues as the Contact it became, with no duplicate),
    else the Lead's Id, else its own Id. A Lead converted into a Contact the warehouse already
    knows therefore ends; the build records that in ``contact_id_changes``.
    """
    contact, account = tables[CONTACT.table], tables[ACCOUNT.table]
    user = tables[USER.table]
    summary = _opportunity_summary(tables[OPPORTUNITY.table])
    origin = _converted_from(tables[LEAD.table])
    contact_id = _first_set(
        _known_contact_id(known, contact.c.id),
        _known_contact_id(known, origin.c.lead_id),
        origin.c.lead_id,
        contact.c.id,
    )
    return (
        select(
            contact_id.label("contact_id"),
            contact.c.id.label("external_id"),
            literal("Contact").label("record_type"),
            contact.c.accountid.label("account_id"),
            account.c.name.label("account_name"),
            account.c.type.label("account_type"),
            contact.c.ownerid.label("owner_id"),
            user.c.name.label("owner_name"),
            user.c.email.label("owner_email"),
            func.coalesce(summary.c.opportunity_count, 0).label("opportunity_count"),
            func.coalesce(summary.c.open_amount, 0).label("open_opportunity_amount"),
            func.coalesce(summary.c.won_count, 0).label("won_opportunity_count"),
            func.coalesce(summary.c.won_amount, 0).label("won_opportunity_amount"),
            contact.c.hasoptedoutofemail.label("opted_out"),
            literal("crm").label("source"),
            contact.c.systemmodstamp.label("crm_modified_at"),
            *_mapped_columns(mapping, "Contact", contact, {"Account": account, "Owner": user}),
        )
        .select_from(
            contact.outerjoin(account, account.c.id == contact.c.accountid)
            .outerjoin(user, user.c.id == contact.c.ownerid)
            .outerjoin(summary, summary.c.account_id == contact.c.accountid)
            .outerjoin(origin, origin.c.contact_id == contact.c.id)
        )
        .where(true() if scope is None else scope)
        .order_by(contact.c.id)
    )


def read_chunks(engine: Engine, statement: Select, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Stream a query's rows as DataFrames of at most ``chunk_size`` rows."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(
            statement
        )
        keys = list(result.keys())
        for rows in result.partitions():
            yield pd.DataFrame([tuple(r) for r in rows], columns=keys, dtype=object)
