"""Over-long request URIs get 414 URI_TOO_LONG, as Salesforce answers them.

The pipeline splits long ``WHERE Id IN (...)`` queries into chunks; these tests pin where the
sandbox draws the line (path plus query string, 16,384 bytes) so that chunking can be tested
against it. URI sizes are computed with ``requests`` the way simple-salesforce sends a query.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceGeneralError

from crm_sandbox import SandboxServer

LIMIT_BYTES = 16_384


def _lead_ids(sf: Salesforce, n: int) -> list[str]:
    records = sf.query(f"SELECT Id FROM Lead ORDER BY Id LIMIT {n}")["records"]
    assert len(records) == n
    return [r["Id"] for r in records]


def _in_query(ids: list[str], padding: int = 0) -> str:
    # Trailing spaces travel as one "+" each: a way to size the URI to the byte.
    return format_soql("SELECT Id FROM Lead WHERE Id IN {ids}", ids=ids) + " " * padding


def _uri_bytes(sf: Salesforce, soql: str) -> int:
    """The request target simple-salesforce sends for ``soql``: path plus query string."""
    url = requests.Request("GET", f"{sf.base_url}query/", params={"q": soql}).prepare().url
    assert url is not None
    parts = urlsplit(url)
    return len(parts.path) + len(parts.query)


def test_a_query_for_1000_ids_is_too_long(server: SandboxServer, sf: Salesforce) -> None:
    soql = _in_query(_lead_ids(sf, 1000))
    assert _uri_bytes(sf, soql) > 24_000
    usage = server.api_usage

    with pytest.raises(SalesforceGeneralError) as refused:
        sf.query(soql)

    assert refused.value.status == 414
    assert refused.value.content == [
        {"message": "Request URI too long", "errorCode": "URI_TOO_LONG", "fields": []}
    ]
    assert server.api_usage == usage  # refused before it counts


def test_the_same_ids_in_chunks_of_500_are_answered(sf: Salesforce) -> None:
    ids = _lead_ids(sf, 1000)

    found: list[str] = []
    for chunk in (ids[:500], ids[500:]):
        soql = _in_query(chunk)
        assert _uri_bytes(sf, soql) < LIMIT_BYTES
        found += [r["Id"] for r in sf.query(soql)["records"]]

    assert sorted(found) == ids


@pytest.mark.parametrize(("extra", "refused"), [(0, False), (1, True)])
def test_the_limit_is_16384_bytes_of_path_and_query(
    sf: Salesforce, extra: int, refused: bool
) -> None:
    ids = _lead_ids(sf, 300)
    padding = LIMIT_BYTES - _uri_bytes(sf, _in_query(ids)) + extra
    soql = _in_query(ids, padding)
    assert _uri_bytes(sf, soql) == LIMIT_BYTES + extra

    if refused:
        with pytest.raises(SalesforceGeneralError) as error:
            sf.query(soql)
        assert error.value.status == 414
    else:
        assert sf.query(soql)["totalSize"] == 300
