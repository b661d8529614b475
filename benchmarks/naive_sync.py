"""The script a data team writes instead of a pipeline: query everything, flatten, replace tables.

    .venv/bin/python benchmarks/naive_sync.py --instance-url https://127.0.0.1:8443 \
        --ca-cert .acton/sandbox/certs/ca.pem --warehouse sqlite:////tmp/naive.sqlite

Written plainly on purpose: it is the baseline ``benchmarks/compare.py`` measures ``acton sync
full`` against (simple-salesforce ``query_all``, ``pandas.json_normalize``,
``DataFrame.to_sql``). It logs in to the sandbox CRM's OAuth token endpoint with the
``ACTON_SANDBOX_*`` logins (the sandbox's built-in ones by default).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
from simple_salesforce import Salesforce
from sqlalchemy import create_engine

from crm_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    trusting_session,
)

# What to copy: the fields acton_pipelines reads with the repository's mapping (compare.py
# passes the lists it computes from the mapping in use, so both read the same columns).
OBJECTS = {
    "Lead": (
        "Id, Email, IsConverted, ConvertedContactId, ConvertedAccountId, ConvertedDate, OwnerId, "
        "Owner.Name, HasOptedOutOfEmail, CreatedDate, LastModifiedDate, SystemModstamp, "
        "FirstName, LastName, Company, Title, Phone, MobilePhone, Fax, Street, City, State, "
        "PostalCode, Country, Industry, LeadSource, Status, ActOn_Score__c, Interests__c, "
        "Newsletter__c, Last_Event_At__c, AnnualRevenue, Fit_Score__c"
    ),
    "Contact": (
        "Id, Email, AccountId, OwnerId, HasOptedOutOfEmail, CreatedDate, LastModifiedDate, "
        "SystemModstamp, FirstName, LastName, Title, Phone, MobilePhone, Fax, MailingStreet, "
        "MailingCity, MailingState, MailingPostalCode, MailingCountry, LeadSource, "
        "ActOn_Score__c, Interests__c, Renewal_Date__c, Newsletter__c, Last_Event_At__c, "
        "Department, Fit_Score__c"
    ),
    "Account": "Id, Name, Type, Industry, OwnerId, SystemModstamp, AnnualRevenue",
    "User": "Id, Name, Email, IsActive, SystemModstamp",
    "Opportunity": (
        "Id, Name, AccountId, StageName, Amount, CloseDate, IsClosed, IsWon, OwnerId, "
        "SystemModstamp"
    ),
}


def login(instance_url: str, ca_cert: str) -> Salesforce:
    # A requests session that trusts the sandbox's own CA (and ignores REQUESTS_CA_BUNDLE).
    session = trusting_session(Path(ca_cert))
    token = session.post(
        f"{instance_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": os.environ.get("ACTON_SANDBOX_CLIENT_ID", SANDBOX_CLIENT_ID),
            "client_secret": os.environ.get("ACTON_SANDBOX_CLIENT_SECRET", SANDBOX_CLIENT_SECRET),
            "username": os.environ.get("ACTON_SANDBOX_USERNAME", SANDBOX_USERNAME),
            "password": os.environ.get("ACTON_SANDBOX_PASSWORD", SANDBOX_PASSWORD),
        },
    )
    token.raise_for_status()
    return Salesforce(
        instance_url=token.json()["instance_url"],
        session_id=token.json()["access_token"],
        session=session,
        version="59.0",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance-url", required=True)
    parser.add_argument("--ca-cert", required=True)
    parser.add_argument("--warehouse", required=True, help="SQLAlchemy URL")
    parser.add_argument(
        "--fields", action="append", default=[], help="OBJECT=Field,Field,... (repeatable)"
    )
    args = parser.parse_args()
    objects = dict(OBJECTS)
    for option in args.fields:
        name, _, fields = option.partition("=")
        objects[name] = fields

    sf = login(args.instance_url, args.ca_cert)
    engine = create_engine(args.warehouse)
    total = 0
    for name, fields in objects.items():
        started = time.perf_counter()
        records = sf.query_all(f"SELECT {fields} FROM {name}")["records"]
        df = pd.json_normalize(records)
        df = df.drop(columns=[c for c in df.columns if c.endswith("attributes.type")])
        df = df.drop(columns=[c for c in df.columns if c.endswith("attributes.url")])
        df.to_sql(f"sf_{name.lower()}", engine, if_exists="replace", index=False, chunksize=10_000)
        total += len(df)
        print(f"{name}: {len(df):,} rows in {time.perf_counter() - started:.1f} s")
    print(f"{total:,} rows")


if __name__ == "__main__":
    main()
