"""The ``acton_imports`` asset over a synced warehouse: what each kind of file changes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from acton_pipelines.mapping.models import DEFAULT_SEGMENTS
from crm_sandbox import SeedSummary
from tests.conftest import make_home, run_full_sync
from tests.imports.conftest import ImportHome, csv_text, materialize_imports, utc

UNIQUE_EMAIL_CONTACTS = """
    SELECT contact_id, email, crm_modified_at FROM acton_contacts
    WHERE source = 'crm' AND crm_modified_at IS NOT NULL AND email IN (
        SELECT email FROM acton_contacts GROUP BY email HAVING count(*) = 1
    )
    ORDER BY contact_id LIMIT :n
"""
SHARED_EMAIL = """
    SELECT email FROM acton_contacts WHERE email IS NOT NULL
    GROUP BY email HAVING count(*) = 2 ORDER BY email LIMIT 1
"""


def crm_contacts(home: ImportHome, n: int) -> list[tuple[str, str, datetime]]:
    """``n`` CRM-backed contacts whose address no other contact has: (id, email, modified)."""
    rows = home.rows(UNIQUE_EMAIL_CONTACTS, n=n)
    assert len(rows) == n
    return [(contact_id, email, utc(modified)) for contact_id, email, modified in rows]


def shared_email(home: ImportHome) -> tuple[str, list[str], datetime]:
    """An address two contacts share (a Lead and a Contact): email, ids, latest CRM change."""
    ((email,),) = home.rows(SHARED_EMAIL)
    rows = home.rows(
        "SELECT contact_id, crm_modified_at FROM acton_contacts WHERE email = :e ORDER BY 1",
        e=email,
    )
    return email, [r[0] for r in rows], max(utc(r[1]) for r in rows)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_an_unknown_address_becomes_an_unaffiliated_scored_acton_only_contact(
    home: ImportHome,
) -> None:
    members_before = home.rows("SELECT segment, contact_id FROM segment_members")
    home.drop(
        "contacts-booth.csv",
        csv_text("email,First Name,job_title,Notes", "Fay.Booth@Example.org,Fay,CTO,met at booth"),
    )
    run_id, metadata = home.run_imports()

    assert home.rows(
        "SELECT contact_id, source, external_id, record_type, email, first_name, job_title, "
        "notes, opted_out, sync_run_id FROM acton_contacts WHERE source = 'acton'"
    ) == [
        (
            "acton:fay.booth@example.org",
            "acton",
            None,
            None,
            "fay.booth@example.org",
            "Fay",
            "CTO",
            "met at booth",
            False,
            run_id,
        )
    ]
    assert home.rows("SELECT count(*) FROM acton_field_edits") == [(0,)]
    members = home.rows(
        "SELECT segment FROM segment_members WHERE contact_id = 'acton:fay.booth@example.org'"
    )
    assert "Unaffiliated" in {s for (s,) in members}
    assert {s for (s,) in members} & set(DEFAULT_SEGMENTS) == {
        "All Act-On Contacts",
        "Unaffiliated",
    }
    # The other contacts keep their memberships: only the imported contact was placed.
    others = home.rows(
        "SELECT segment, contact_id FROM segment_members "
        "WHERE contact_id != 'acton:fay.booth@example.org'"
    )
    assert sorted(others) == sorted(members_before)
    sheets = home.rows(
        "SELECT score_sheet, sync_run_id FROM contact_scores "
        "WHERE contact_id = 'acton:fay.booth@example.org' ORDER BY 1"
    )
    assert sheets == [("default", run_id), ("fit", run_id)]
    assert home.rows(
        "SELECT mode, rows_upserted FROM sync_runs WHERE run_id = :r AND object = 'acton_contacts'",
        r=run_id,
    ) == [("incremental", 1)]
    assert metadata["files_applied"] == 1 and metadata["rows_applied"] == 1
    assert metadata["segment_sizes"]["Unaffiliated"] == len(
        home.rows("SELECT 1 FROM segment_members WHERE segment = 'Unaffiliated'")
    )


def test_a_known_address_updates_every_contact_that_has_it(home: ImportHome) -> None:
    email, ids, modified = shared_email(home)
    submitted = modified + timedelta(days=1)
    path = home.drop(
        "contacts-list.csv",
        csv_text("email,Job Title,submitted_at", f"{email.upper()},Head of Ops,{iso(submitted)}"),
    )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    run_id, _ = home.run_imports()

    assert home.rows(
        "SELECT contact_id, job_title, sync_run_id FROM acton_contacts WHERE email = :e ORDER BY 1",
        e=email,
    ) == [(i, "Head of Ops", run_id) for i in ids]
    edits = home.rows(
        "SELECT contact_id, field, value, changed_at, source_file, line, push_status "
        "FROM acton_field_edits ORDER BY contact_id"
    )
    assert [(*e[:3], utc(e[3]), *e[4:]) for e in edits] == [
        (i, "Job Title", "Head of Ops", submitted, sha, 2, "pending") for i in ids
    ]
    assert home.rows("SELECT count(*) FROM acton_contacts WHERE source = 'acton'") == [(0,)]


def test_an_edit_applies_whatever_the_record_time_and_keeps_the_crm_value_it_was_made_against(
    home: ImportHome,
) -> None:
    # Conflicts are per field (three-way): an edit dated before the record's last CRM change
    # still applies; the CRM's value of that field at the time is kept for the push to compare.
    (newer, n_email, n_at), (equal, e_email, e_at), (older, o_email, o_at) = crm_contacts(home, 3)
    home.drop(
        "edits-1.csv",
        csv_text(
            "email,field,value,changed_at",
            f"{n_email},Job Title,Newer,{iso(n_at + timedelta(seconds=1))}",
            f"{e_email},Job Title,Equal,{iso(e_at)}",
            f"{o_email},Job Title,Older,{iso(o_at - timedelta(days=1))}",
        ),
    )
    run_id, _ = home.run_imports()

    titles = dict(home.rows("SELECT contact_id, job_title FROM acton_contacts"))
    assert (titles[newer], titles[equal], titles[older]) == ("Newer", "Equal", "Older")
    edits = home.rows("SELECT contact_id, push_status, crm_value_at_edit FROM acton_field_edits")
    crm_titles = dict(
        home.rows("SELECT id, title FROM crm_leads UNION ALL SELECT id, title FROM crm_contacts")
    )
    external = dict(home.rows("SELECT contact_id, external_id FROM acton_contacts"))
    assert sorted(edits) == sorted(
        (c, "pending", crm_titles[external[c]]) for c in (newer, equal, older)
    )
    touched = {
        i
        for (i,) in home.rows(
            "SELECT contact_id FROM acton_contacts WHERE sync_run_id = :r", r=run_id
        )
    }
    assert touched == {newer, equal, older}

    # Between Act-On-side edits too the most recent wins: an older one loses, a newer one
    # replaces the value and supersedes the pending edit it replaces.
    home.drop(
        "edits-2.csv",
        csv_text(
            "email,field,value,changed_at",
            f"{n_email},Job Title,Stale,{iso(n_at + timedelta(milliseconds=500))}",
            f"{n_email},job_title,Newest,{iso(n_at + timedelta(hours=1))}",
        ),
    )
    home.run_imports()
    assert dict(home.rows("SELECT contact_id, job_title FROM acton_contacts"))[newer] == "Newest"
    assert home.rows(
        "SELECT value, push_status FROM acton_field_edits WHERE contact_id = :c ORDER BY id",
        c=newer,
    ) == [("Newer", "superseded"), ("Stale", "superseded"), ("Newest", "pending")]


def test_a_half_bad_file_applies_nothing_and_lists_every_bad_line(home: ImportHome) -> None:
    ((_, known, _),) = crm_contacts(home, 1)
    lines = [f"new{i}@example.com,Name{i},yes" for i in range(2, 9)]
    lines[3 - 2] = "new3@example.com,Name3,perhaps"
    lines[7 - 2] = "new7@example,Name7,no"
    lines[5 - 2] = f"{known},Known,no"
    home.drop("contacts-half-bad.csv", csv_text("email,First Name,Newsletter", *lines))
    run_id, metadata = home.run_imports()

    assert home.rows(
        "SELECT file_name, kind, status, rows, rows_applied, rows_rejected FROM acton_import_files"
    ) == [("contacts-half-bad.csv", "contacts", "rejected", 7, 0, 2)]
    assert home.rows(
        'SELECT line, "column", value, reason FROM acton_import_rejects ORDER BY line'
    ) == [
        (3, "Newsletter", "perhaps", "not a boolean (expected true/false, yes/no or 1/0)"),
        (7, "email", "new7@example", "not a valid email address"),
    ]
    assert home.rows("SELECT count(*) FROM acton_contacts WHERE source = 'acton'") == [(0,)]
    assert home.rows("SELECT count(*) FROM acton_field_edits") == [(0,)]
    assert home.rows("SELECT count(*) FROM sync_runs WHERE run_id = :r", r=run_id) == [(0,)]
    assert metadata["files_rejected"] == 1 and metadata["rows_applied"] == 0
    assert metadata["rejects_by_reason"] == {
        "not a boolean (expected true/false, yes/no or 1/0)": 1,
        "not a valid email address": 1,
    }


def test_each_file_is_imported_once_even_renamed(home: ImportHome) -> None:
    home.drop("contacts-a.csv", csv_text("email,First Name", "once@example.com,Once"))
    _, metadata = home.run_imports()
    assert metadata["files_applied"] == 1
    processed = home.imports / "processed" / "contacts-a.csv"
    assert processed.is_file() and not (home.imports / "contacts-a.csv").exists()

    # The same content dropped again, renamed and copied: skipped, and moved out too.
    for name in ("contacts-renamed.csv", "contacts-copy.csv"):
        (home.imports / name).write_bytes(processed.read_bytes())
    _, metadata = home.run_imports()
    assert (metadata["files_applied"], metadata["files_already_imported"]) == (0, 2)
    assert home.rows("SELECT file_name, status FROM acton_import_files") == [
        ("contacts-a.csv", "applied")
    ]
    assert sorted(p.name for p in (home.imports / "processed").iterdir()) == [
        "contacts-a.csv",
        "contacts-copy.csv",
        "contacts-renamed.csv",
    ]

    home.drop("contacts-b.csv", csv_text("email,First Name", "once@example.com,Twice"))
    _, metadata = home.run_imports()
    assert metadata["files_applied"] == 1
    assert home.rows("SELECT count(*) FROM acton_import_files") == [(2,)]


def test_identical_files_in_one_drop_apply_once(home: ImportHome) -> None:
    content = csv_text("email,First Name", "twin@example.com,Twin")
    home.drop("contacts-1.csv", content)
    home.drop("contacts-2.csv", content)
    _, metadata = home.run_imports()
    assert metadata["files"] == {"contacts-1.csv": "applied"}
    assert metadata["files_already_imported"] == 1


def test_an_opt_out_then_an_opt_in(home: ImportHome) -> None:
    ((contact_id, email, _),) = crm_contacts(home, 1)
    out_at = datetime.fromisoformat("2026-11-21T09:00:00+00:00")
    home.drop(
        "opt_outs-nov.csv",
        csv_text("email,opted_out_at", f"{email},{iso(out_at)}", "Stranger@Example.net,"),
    )
    run_id, _ = home.run_imports()
    listed = {
        e: (bool(o), s, utc(a), utc(c))
        for e, o, s, a, c in home.rows(
            "SELECT email, opted_out, source, added_at, changed_at FROM opt_outs "
            "WHERE source = 'opt_outs-nov.csv'"
        )
    }
    assert listed[email] == (True, "opt_outs-nov.csv", out_at, out_at)
    assert listed["stranger@example.net"][:2] == (True, "opt_outs-nov.csv")
    assert home.rows(
        "SELECT opted_out, sync_run_id FROM acton_contacts WHERE contact_id = :c", c=contact_id
    ) == [(True, run_id)]

    in_at = out_at + timedelta(days=2)
    home.drop(
        "opt_ins-dec.csv",
        csv_text(
            "email,opted_in_at",
            f"{email},{iso(in_at)}",
            # Older than the address's opt-out: the most recent change wins.
            f"stranger@example.net,{iso(out_at - timedelta(days=30))}",
        ),
    )
    home.run_imports()
    rows = home.rows(
        "SELECT email, opted_out, source, added_at, changed_at FROM opt_outs "
        "WHERE email IN (:a, 'stranger@example.net') ORDER BY email",
        a=email,
    )
    state = {e: (bool(o), s, utc(a), utc(c)) for e, o, s, a, c in rows}
    assert state[email] == (False, "opt_outs-nov.csv", out_at, in_at)
    assert state["stranger@example.net"][0] is True
    assert home.rows(
        "SELECT opted_out FROM acton_contacts WHERE contact_id = :c", c=contact_id
    ) == [(False,)]


def test_activity_is_recorded_for_every_contact_of_the_address(home: ImportHome) -> None:
    email, ids, _ = shared_email(home)
    ((single, single_email, _),) = crm_contacts(home, 1)
    path = home.drop(
        "activity-web.csv",
        csv_text(
            "email,activity,occurred_at,asset",
            f"{email},web_visit,2026-11-20T10:00:00Z,/pricing",
            f"{single_email},email_click,2026-11-21T08:30:00+01:00,",
        ),
    )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    run_id, _ = home.run_imports()
    rows = home.rows(
        "SELECT contact_id, activity, occurred_at, asset, source_file, line FROM acton_activity "
        "ORDER BY line, contact_id"
    )
    assert [(r[0], r[1], utc(r[2]).isoformat(), *r[3:]) for r in rows] == [
        *[(i, "web_visit", "2026-11-20T10:00:00+00:00", "/pricing", sha, 2) for i in ids],
        (single, "email_click", "2026-11-21T07:30:00+00:00", None, sha, 3),
    ]
    # Behaviour rules score activity: those contacts were rescored by this run.
    rescored = home.rows(
        "SELECT DISTINCT contact_id FROM contact_scores WHERE sync_run_id = :r ORDER BY 1",
        r=run_id,
    )
    assert [i for (i,) in rescored] == sorted([*ids, single])


def test_create_in_crm_requests_a_crm_record_for_an_acton_only_contact(home: ImportHome) -> None:
    home.drop(
        "contacts-1.csv",
        csv_text(
            "email,First Name,Last Name,Company,create_in_crm",
            "lead-me@example.com,Lee,Ames,Acme,yes",
            "later@example.com,Al,Bo,Bolt Inc,no",
        ),
    )
    home.run_imports()
    assert home.rows("SELECT contact_id, email, status FROM crm_create_requests") == [
        ("acton:lead-me@example.com", "lead-me@example.com", "pending")
    ]
    # An Act-On-only contact may be designated later (what it holds counts); a CRM record may
    # not.
    home.drop("contacts-2.csv", csv_text("email,create_in_crm", "later@example.com,true"))
    home.run_imports()
    assert [r[0] for r in home.rows("SELECT contact_id FROM crm_create_requests ORDER BY 1")] == [
        "acton:later@example.com",
        "acton:lead-me@example.com",
    ]
    ((contact_id, email, _),) = crm_contacts(home, 1)
    home.drop("contacts-3.csv", csv_text("email,create_in_crm", f"{email},1"))
    _, metadata = home.run_imports()
    assert metadata["files_rejected"] == 1
    ((line, column, reason),) = home.rows('SELECT line, "column", reason FROM acton_import_rejects')
    assert (line, column) == (2, "create_in_crm")
    assert reason.startswith("already in the CRM") and contact_id in reason


def test_create_in_crm_without_the_crms_required_lead_fields_is_rejected_at_import(
    home: ImportHome,
) -> None:
    # The CRM's describe (stored by the sync in crm_fields) says which Lead fields a create
    # must set; the sandbox, like Salesforce, requires LastName and Company.
    required = {
        field
        for (field,) in home.rows(
            "SELECT field FROM crm_fields WHERE object = 'Lead' AND nillable = :f "
            "AND createable = :t AND defaulted_on_create = :f AND type <> 'boolean'",
            f=False,
            t=True,
        )
    }
    assert required == {"LastName", "Company"}
    home.drop(
        "contacts-1.csv",
        csv_text(
            "email,First Name,Last Name,create_in_crm",
            "no-company@example.com,Nia,Cole,yes",
            "complete@example.com,Cy,Dunn,no",
        ),
    )
    _, metadata = home.run_imports()
    assert metadata["files_rejected"] == 1
    ((line, column, reason),) = home.rows('SELECT line, "column", reason FROM acton_import_rejects')
    assert (line, column) == (2, "create_in_crm")
    assert "requires Company" in reason and "LastName" not in reason
    assert home.rows("SELECT count(*) FROM crm_create_requests") == [(0,)]

    # Once the contact holds a Company, designating it for the CRM is accepted.
    home.drop(
        "contacts-2.csv",
        csv_text("email,Last Name,Company", "no-company@example.com,Cole,Cole Ltd"),
    )
    home.drop("contacts-3.csv", csv_text("email,create_in_crm", "no-company@example.com,yes"))
    _, metadata = home.run_imports()
    assert metadata["files_rejected"] == 0
    assert home.rows("SELECT contact_id, status FROM crm_create_requests") == [
        ("acton:no-company@example.com", "pending")
    ]


def test_imports_on_both_backends(
    warehouse_url: str,
    small_crm: SeedSummary,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse=warehouse_url)
    assert run_full_sync(synced).success
    home = ImportHome(synced.path, synced.warehouse_url)
    (lead_id, lead_email, modified), (other_id, other_email, _) = crm_contacts(home, 2)
    home.drop(
        "contacts-1.csv",
        csv_text(
            "email,First Name,Last Name,Company,Newsletter,Renewal Date,create_in_crm",
            "both@example.com,Bo,Berg,Berg AB,yes,2027-01-31,yes",
        ),
    )
    home.drop(
        "edits-1.csv",
        csv_text(
            "email,field,value,changed_at",
            f"{lead_email},Annual Revenue,2500000,{iso(modified + timedelta(minutes=5))}",
        ),
    )
    home.drop("opt_outs-1.csv", csv_text("email", other_email, "both@example.com"))
    home.drop("opt_ins-1.csv", csv_text("email", "both@example.com"))
    home.drop(
        "activity-1.csv",
        csv_text("email,activity,occurred_at", "both@example.com,form_submit,2026-11-20T10:00:00Z"),
    )
    home.drop(
        "edits-2.csv",
        csv_text("email,field,value,changed_at", "nobody@example.com,Notes,x,2026-11-20"),
    )
    run_id, metadata = materialize_imports(warehouse_url)

    # contacts files go first, so activity-1.csv finds the contact contacts-1.csv created.
    assert metadata["files"] == {
        "activity-1.csv": "applied",
        "contacts-1.csv": "applied",
        "edits-1.csv": "applied",
        "edits-2.csv": "rejected",
        "opt_ins-1.csv": "applied",
        "opt_outs-1.csv": "applied",
    }
    assert home.rows(
        "SELECT first_name, newsletter, renewal_date, opted_out FROM acton_contacts "
        "WHERE contact_id = 'acton:both@example.com'"
    )[0][:2] == ("Bo", True)
    (renewal,) = home.rows(
        "SELECT renewal_date FROM acton_contacts WHERE contact_id = 'acton:both@example.com'"
    )[0]
    assert str(renewal)[:10] == "2027-01-31"
    assert home.rows(
        "SELECT annual_revenue FROM acton_contacts WHERE contact_id = :c", c=lead_id
    ) == [(2500000.0,)]
    # opt_ins-1.csv sorts before opt_outs-1.csv: both@ ends the run opted out.
    assert home.rows(
        "SELECT contact_id, opted_out FROM acton_contacts WHERE contact_id IN (:a, :b) ORDER BY 1",
        a=other_id,
        b="acton:both@example.com",
    ) == sorted([(other_id, True), ("acton:both@example.com", True)])
    assert home.rows("SELECT status FROM crm_create_requests") == [("pending",)]
    assert home.rows(
        "SELECT segment FROM segment_members WHERE contact_id = 'acton:both@example.com' "
        "AND segment = 'Unaffiliated'"
    ) == [("Unaffiliated",)]
    assert {
        s
        for (s,) in home.rows(
            "SELECT score_sheet FROM contact_scores WHERE contact_id = 'acton:both@example.com' "
            "AND sync_run_id = :r",
            r=run_id,
        )
    } == {"default", "fit"}
    assert home.rows(
        'SELECT file_name, line, "column", reason FROM acton_import_rejects ORDER BY file_name'
    ) == [("edits-2.csv", 2, "email", "no Act-On contact has this email")]
    # Every file left the folder: applied ones to processed/, the bad one to rejected/.
    assert sorted(p.name for p in home.imports.iterdir()) == ["processed", "rejected"]
    assert sorted(p.name for p in (home.imports / "rejected").iterdir()) == [
        "edits-2.csv",
        "edits-2.csv.errors.txt",
    ]
    # The same files again: nothing new, and each goes where its first import sent it.
    for sub in ("processed", "rejected"):
        for path in (home.imports / sub).glob("*.csv"):
            (home.imports / path.name).write_bytes(path.read_bytes())
    _, again = materialize_imports(warehouse_url)
    assert (again["files_applied"], again["files_already_imported"]) == (0, 6)
    assert (home.imports / "rejected" / "edits-2-2.csv.errors.txt").read_text() == (
        "edits-2.csv, line 2, column email: no Act-On contact has this email "
        "(value 'nobody@example.com')\n"
    )
    assert len(list((home.imports / "processed").glob("*-2.csv"))) == 5
