"""The sandbox CRM: a local, Salesforce-compatible HTTPS API over a seeded SQLite file.

It is the embedded default CRM for the demo and the tests; simple-salesforce talks to it
unchanged (``instance_url`` + ``session_id`` + a session trusting the sandbox CA).
"""

from acton_pipelines.sandbox.churn import ChurnSummary, churn_sandbox
from acton_pipelines.sandbox.conversion import Conversion
from acton_pipelines.sandbox.seed import SeedSummary, seed_sandbox
from acton_pipelines.sandbox.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    SandboxServer,
    login,
    trusting_session,
)

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_PASSWORD",
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
