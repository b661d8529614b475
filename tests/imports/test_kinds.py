"""File kinds from file names."""

from __future__ import annotations

import pytest

from acton_pipelines.imports.kinds import ImportKind, kind_of


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("contacts.csv", ImportKind.CONTACTS),
        ("contacts-webinar-2026-11.csv", ImportKind.CONTACTS),
        ("Opt_Outs_November.CSV", ImportKind.OPT_OUTS),
        ("opt_ins.csv", ImportKind.OPT_INS),
        ("edits_1.csv", ImportKind.EDITS),
        ("activity.csv", ImportKind.ACTIVITY),
    ],
)
def test_the_name_prefix_gives_the_kind(name: str, kind: ImportKind) -> None:
    assert kind_of(name) is kind


@pytest.mark.parametrize("name", ["leads.csv", "contacts.txt", "contacts.csv.part", "optouts.csv"])
def test_other_names_have_no_kind(name: str) -> None:
    assert kind_of(name) is None
