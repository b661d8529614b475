"""``acton sample OBJECT``: a few CRM records with the fields the mapping reads."""

from __future__ import annotations

import click
import pandas as pd

from acton_pipelines import settings
from acton_pipelines.cli.crm_connection import connected_crm
from acton_pipelines.cli.errors import friendly_errors
from acton_pipelines.crm.extract import build_soql, field_types, page_frame
from acton_pipelines.crm.objects import CRM_OBJECTS, CrmObject
from acton_pipelines.mapping import load_mapping
from acton_pipelines.runs.window import FULL_SYNC

MAPPED = ("Lead", "Contact")


def sample_fields(crm_object: CrmObject, mapping_fields: list[str]) -> list[str]:
    """Id plus the mapped fields (hops included) for Lead/Contact; base fields otherwise."""
    if crm_object.name in MAPPED:
        return list(dict.fromkeys(["Id", *mapping_fields]))
    return list(crm_object.base_fields)


@click.command()
@click.argument("object_name", metavar="OBJECT", type=click.Choice([o.name for o in CRM_OBJECTS]))
@click.option("--limit", default=5, show_default=True, help="How many records.")
@friendly_errors
def sample(object_name: str, limit: int) -> None:
    """Show a few records of a CRM OBJECT with the fields the mapping reads.

    The article's tip: see what the data in a CRM field looks like before choosing its data
    type.
    """
    crm_object = next(o for o in CRM_OBJECTS if o.name == object_name)
    mapping = load_mapping(settings.mapping_dir())
    fields = sample_fields(
        crm_object, mapping.crm_fields(object_name) if object_name in MAPPED else []
    )
    with connected_crm() as crm:
        describes = {name: crm.describe(name) for name in {object_name, "Account", "User"}}
        types = field_types(fields, describes, object_name)
        total = next(crm.query_pages(f"SELECT COUNT() FROM {crm_object.name}")).total_size
        soql = f"{build_soql(crm_object, fields, FULL_SYNC)} LIMIT {int(limit)}"
        page = next(crm.query_pages(soql))
    frame = page_frame(page.records, types)
    click.echo(f"{object_name}: {total:,} records; showing {len(frame)}")
    width = max(len(name) for name in types)
    for number, (_, record) in enumerate(frame.iterrows(), start=1):
        click.echo(f"\nRecord {number}")
        for name, value in zip(types, record, strict=True):
            shown = "" if pd.isna(value) else value
            click.echo(f"  {name:<{width}}  {shown}")
