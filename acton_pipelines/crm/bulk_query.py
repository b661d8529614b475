"""Reading a SOQL query through Bulk API 2.0: one query job, its results as CSV pages.

A full sync of a large org reads hundreds of thousands of records. Through REST that is one
call per 2,000 records, each a JSON page parsed record by record; a Bulk API 2.0 query job
answers with CSV pages of up to ``maxRecords`` records (default here 50,000, env
``ACTON_BULK_PAGE_RECORDS``), which pyarrow parses into typed columns in C++.

The protocol, as Salesforce documents it: ``POST jobs/query`` ``{"operation": "query" |
"queryAll", "query", "contentType": "CSV"}`` creates the job; ``GET jobs/query/<id>`` is polled
until its ``state`` is ``JobComplete`` (``Failed`` / ``Aborted`` carry an ``errorMessage``);
``GET jobs/query/<id>/results?maxRecords=N[&locator=L]`` returns one page, a header row on
every page, and the next page's ``Sforce-Locator`` (the text ``null`` after the last).

Why not simple-salesforce's ``sf.bulk2``: its ``query`` / ``query_all`` generators create the
job, wait and page in one piece, so a transient error half-way cannot be retried call by call
(a dropped page would restart, or fail, the whole read); its wait sleeps a fixed 5 s first and
raises a generic ``SalesforceOperationError`` with the whole job info; and it decodes every
page to ``str`` (pyarrow wants the bytes). Its streaming variant writes pages to files. So each
request here is one documented call, made with simple-salesforce's own transport
(``simple_salesforce.util.call_salesforce`` on ``sf.session``, ``sf.bulk2_url``, the bearer
session id), which raises the library's exceptions, so every call goes through
``CrmClient.call``: transient errors (5xx, dropped connections) are retried, an expired session
logs in again, the org's API limit stops at once, and API calls are counted.

Creating a job when the answer to the first request was lost (the connection dropped after
the request was sent) is the one retry with a cost: the CRM may have created the first job, and
Bulk 2.0 has no idempotency key to find it again (the job list does not say which query a job
runs, and adopting another run's job of the same object could read the wrong window). A query
job is read-only, so the duplicate wastes only a little of the org's allowances: the orphan
finishes unread and Salesforce deletes it after seven days. Failing instead would throw away
the whole sync for one lost answer (a flaky network loses some every run). So creation is
retried like any call, within the client's retry policy, and each lost answer is logged as a
warning naming the possible orphan. An ingest job (a write) must never be created twice; this
module creates query jobs only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import requests
from pyarrow import csv as pa_csv
from simple_salesforce import Salesforce
from simple_salesforce.util import call_salesforce

from acton_pipelines.crm.client import CrmClient, CrmUnavailable
from acton_pipelines.settings import whole_number_from_env
from acton_pipelines.warehouse.tables import crm_column_name

logger = logging.getLogger(__name__)

BULK_PAGE_RECORDS_ENV = "ACTON_BULK_PAGE_RECORDS"
DEFAULT_PAGE_RECORDS = 50_000
JOB_COMPLETE = "JobComplete"
JOB_FAILED_STATES = frozenset({"Failed", "Aborted"})
# Longest errorMessage quoted in the one-line failure.
_MAX_JOB_MESSAGE = 300

# The describe types stored as something other than text (as in warehouse.tables' mirror
# columns); every other type (ids, strings, picklists, '00123') stays a string.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "int": pa.int64(),
    "double": pa.float64(),
    "currency": pa.float64(),
    "percent": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
}


class BulkQueryFailed(CrmUnavailable):
    """A Bulk API 2.0 query job failed, was aborted or did not finish in time: the message says
    which job and why, in one line."""


def page_records_from_env() -> int:
    """``ACTON_BULK_PAGE_RECORDS``: records asked for per results page (default 50,000)."""
    return whole_number_from_env(
        BULK_PAGE_RECORDS_ENV, DEFAULT_PAGE_RECORDS, of="records", minimum=1
    )


@dataclass(frozen=True)
class BulkPollPolicy:
    """How a query job's state is polled: waits start at ``first_wait_seconds`` and grow by
    half each poll up to ``max_wait_seconds``, so a quick job is seen at once and a long one
    costs few calls; after ``give_up_after_seconds`` the job is aborted and the read fails."""

    first_wait_seconds: float = 0.1
    max_wait_seconds: float = 15.0
    give_up_after_seconds: float = 4 * 3600.0

    def waits(self) -> Iterator[float]:
        """The successive waits between polls."""
        wait = self.first_wait_seconds
        while True:
            yield wait
            wait = min(wait * 1.5, self.max_wait_seconds)


@dataclass
class BulkPage:
    """One results page as a typed frame, and how many records the whole job found."""

    frame: pd.DataFrame
    total_size: int


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_JOB_MESSAGE else flat[: _MAX_JOB_MESSAGE - 1] + "…"


def _request(
    sf: Salesforce,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    accept: str = "application/json",
) -> requests.Response:
    """One Bulk 2.0 request with the session simple-salesforce logged in with; an error answer
    raises the library's exception (as its own calls do), and the org's API usage the answer
    reports is kept on ``sf`` like the library keeps it."""
    headers = {
        "Authorization": f"Bearer {sf.session_id}",
        "Content-Type": "application/json",
        "Accept": accept,
    }
    response = call_salesforce(
        url=sf.bulk2_url + path,
        method=method,
        session=sf.session,
        headers=headers,
        data=json.dumps(body) if body is not None else None,
        params=params,
    )
    usage = response.headers.get("Sforce-Limit-Info")
    if usage:
        sf.api_usage = Salesforce.parse_api_usage(usage)
    return response


def _create_job(client: CrmClient, soql: str, include_deleted: bool, object_name: str) -> str:
    body = {
        "operation": "queryAll" if include_deleted else "query",
        "query": soql,
        "contentType": "CSV",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    }

    def create(sf: Salesforce) -> dict[str, Any]:
        try:
            return _request(sf, "POST", "query", body=body).json()
        except (requests.exceptions.ChunkedEncodingError, requests.ReadTimeout) as error:
            # Retried by the client (see the module docstring): say what the retry may leave.
            logger.warning(
                "the answer to creating a Bulk API 2.0 query job on %s was lost (%s); asking "
                "again: a job the CRM may have created meanwhile finishes unread",
                object_name,
                type(error).__name__,
            )
            raise

    job = client.call(create)
    return str(job["id"])


def _abort_job(client: CrmClient, job_id: str) -> None:
    """Ask the CRM to stop a job we no longer wait for; the read fails either way."""
    # Best effort: the timeout is what the user must be told, not why the abort failed.
    with contextlib.suppress(Exception):
        client.call(lambda sf: _request(sf, "PATCH", f"query/{job_id}", body={"state": "Aborted"}))


def wait_for_job(
    client: CrmClient,
    job_id: str,
    object_name: str,
    policy: BulkPollPolicy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the job until it is ``JobComplete`` and return its info; ``BulkQueryFailed`` when
    it ends ``Failed`` / ``Aborted`` or outlasts ``policy``."""
    started = clock()
    for wait in policy.waits():
        info = client.call(lambda sf: _request(sf, "GET", f"query/{job_id}").json())
        state = str(info.get("state"))
        if state == JOB_COMPLETE:
            return info
        if state in JOB_FAILED_STATES:
            reason = _one_line(info.get("errorMessage") or "no error message")
            raise BulkQueryFailed(
                f"Bulk API 2.0 query job {job_id} on {object_name} ended {state}: {reason}"
            )
        if clock() - started + wait > policy.give_up_after_seconds:
            _abort_job(client, job_id)
            raise BulkQueryFailed(
                f"Bulk API 2.0 query job {job_id} on {object_name} was still {state} after "
                f"{policy.give_up_after_seconds / 60:g} min; aborted it: the next run starts a "
                "new one"
            )
        sleep(wait)
    raise AssertionError("unreachable: BulkPollPolicy.waits never ends")


def arrow_type(crm_type: str) -> pa.DataType:
    """The Arrow type a describe type is parsed as (text unless stored otherwise)."""
    return _ARROW_TYPES.get(crm_type, pa.string())


def _header(data: bytes) -> list[str]:
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    return next(csv.reader([first.decode("utf-8").rstrip("\r")]), [])


def _as_page_frame_column(column: pd.Series) -> pd.Series:
    """A column as ``page_frame`` types it: ``object`` holding Python values and ``None``,
    but for datetimes (``datetime64[.., UTC]``)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column
    return pd.Series(column.to_numpy(dtype=object, na_value=None), index=column.index, dtype=object)


def csv_page_frame(data: bytes, types: dict[str, str]) -> pd.DataFrame:
    """One Bulk API results page (CSV with a header row) as the frame ``page_frame`` gives for
    the same records: one column per field of ``types`` (``crm_column_name``, in that order),
    typed from the describe types, never inferred (``'00123'`` stays text).

    Header names match ``types`` ignoring case; a field the page lacks is all ``None``, a
    column ``types`` lacks is dropped. An empty cell (quoted or not) is null: Salesforce has
    no empty text.
    """
    by_lower = {name.lower(): name for name in types}
    header = _header(data) if data.strip() else []
    found = {h: by_lower[h.lower()] for h in header if h.lower() in by_lower}
    if found:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={h: arrow_type(types[name]) for h, name in found.items()},
                include_columns=list(found),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                true_values=["true", "True", "TRUE"],
                false_values=["false", "False", "FALSE"],
            ),
        )
        parsed = table.to_pandas(date_as_object=True, integer_object_nulls=True)
        rows = table.num_rows
    else:
        parsed, rows = pd.DataFrame(), 0
    columns: dict[str, pd.Series] = {}
    header_of = {name: h for h, name in found.items()}
    for name, crm_type in types.items():
        if name in header_of:
            columns[crm_column_name(name)] = _as_page_frame_column(parsed[header_of[name]])
        elif crm_type == "datetime":
            columns[crm_column_name(name)] = pd.Series(
                pd.NaT, index=range(rows), dtype="datetime64[us, UTC]"
            )
        else:
            columns[crm_column_name(name)] = pd.Series([None] * rows, dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


def bulk_query_pages(
    client: CrmClient,
    soql: str,
    types: dict[str, str],
    *,
    object_name: str,
    include_deleted: bool = False,
    max_records: int | None = None,
    poll: BulkPollPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[BulkPage]:
    """Run ``soql`` as a Bulk API 2.0 query job (``queryAll`` with ``include_deleted``) and
    yield its results page by page as typed frames (``csv_page_frame``): memory holds one
    page (``max_records``, default ``ACTON_BULK_PAGE_RECORDS``) at a time.

    Errors: ``BulkQueryFailed`` for a job that fails, is aborted or outlasts ``poll``; the
    ``CrmClient.call`` errors for the calls themselves.
    """
    page_size = max_records or page_records_from_env()
    job_id = _create_job(client, soql, include_deleted, object_name)
    info = wait_for_job(client, job_id, object_name, poll or BulkPollPolicy(), sleep)
    total = int(info.get("numberRecordsProcessed") or 0)
    locator: str | None = None
    while True:
        params: dict[str, Any] = {"maxRecords": page_size}
        if locator:
            params["locator"] = locator

        def fetch(sf: Salesforce, params: dict[str, Any] = params) -> tuple[bytes, str | None]:
            response = _request(
                sf, "GET", f"query/{job_id}/results", params=params, accept="text/csv"
            )
            # ``content`` reads the whole body here, so a connection dropped mid-page is
            # retried with the page it belongs to.
            return response.content, response.headers.get("Sforce-Locator")

        data, locator = client.call(fetch)
        yield BulkPage(frame=csv_page_frame(data, types), total_size=total)
        if not locator or locator == "null":
            return
