"""The sandbox CRM: a local, Salesforce-compatible HTTPS API over a seeded SQLite file.

A package of its own, beside ``acton_pipelines`` and importing nothing from it: it is what a
Salesforce org looks like from outside (REST query, describe, CRUD, Collections, Bulk 2.0
ingest, replication, OAuth and SOAP login), so the pipeline's production code runs against it
unchanged through simple-salesforce. ``acton_pipelines`` uses only the names exported here:
the server (``SandboxServer``, ``login``, ``trusting_session``), seeding (``seed_sandbox``) and
churn (``churn_sandbox``); tests also reach the faults (``SandboxServer.faults``).
"""

from crm_sandbox.churn import DEFAULT_RETENTION_DAYS, ChurnSummary, churn_sandbox
from crm_sandbox.conversion import Conversion
from crm_sandbox.seed import SeedSummary, seed_sandbox
from crm_sandbox.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
    SANDBOX_USERNAME,
    SandboxServer,
    login,
    trusting_session,
)

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_PASSWORD",
    "SANDBOX_SECURITY_TOKEN",
    "SANDBOX_USERNAME",
    "ChurnSummary",
    "Conversion",
    "SandboxServer",
    "SeedSummary",
    "churn_sandbox",
    "login",
    "seed_sandbox",
    "trusting_session",
]
