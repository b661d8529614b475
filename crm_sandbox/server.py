"""Running the sandbox CRM: uvicorn with TLS on a loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import requests
import uvicorn

from crm_sandbox import replication, store
from crm_sandbox.app import (
    DEFAULT_API_LIMIT,
    TOKEN_PATH,
    SandboxState,
    create_app,
    quiet_deliberate_cuts,
)
from crm_sandbox.certs import ensure_certificates
from crm_sandbox.sessions import Credentials, SessionRegistry
from crm_sandbox.soap_login import SOAP_LOGIN_PATH

SANDBOX_USERNAME = "integration@acme-sandbox.example.com"
SANDBOX_PASSWORD = "sandbox-password"
# Salesforce security tokens are 24-25 letters and digits.
SANDBOX_SECURITY_TOKEN = "SandboxSecurityToken0042"
SANDBOX_CLIENT_ID = "3MVG9sandbox.acton.pipelines"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"

_STARTUP_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox only listens on loopback addresses, not {host!r}")


class SandboxServer:
    """A Salesforce-compatible HTTPS API over a seeded SQLite file, on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``port=0`` picks a free
    port. ``clock`` supplies "now" for write stamps and SOQL date literals (default: UTC now).

    ``deleted_before_log`` says how getDeleted answers a ``start`` older than its delete log
    (15 days, less after a purge): ``"invalid_replication_date"`` (default) refuses it with
    400 INVALID_REPLICATION_DATE, as Salesforce documents; ``"late_earliest_date"`` answers 200
    with an ``earliestDateAvailable`` later than ``start``, as some orgs and API versions do.
    Either way the client must resync; the option lets it be tested against both.

    Logins: ``username`` + ``password`` on the OAuth token endpoint (password grant),
    ``username`` + ``password`` followed by ``security_token`` on the SOAP ``login()`` call, and
    ``client_id`` + ``client_secret`` for the client-credentials grant. A shared sandbox passes its
    own values (``acton sandbox serve`` reads them from ``ACTON_SANDBOX_*``); the defaults are
    the ``SANDBOX_*`` constants.
    """

    def __init__(
        self,
        db_path: Path,
        cert_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = SANDBOX_USERNAME,
        password: str = SANDBOX_PASSWORD,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        *,
        security_token: str = SANDBOX_SECURITY_TOKEN,
        api_limit: int = DEFAULT_API_LIMIT,
        clock: Callable[[], datetime] = _utc_now,
        deleted_before_log: replication.DeletedBeforeLog = replication.INVALID_REPLICATION_DATE,
    ) -> None:
        _require_loopback(host)
        if deleted_before_log not in replication.DELETED_BEFORE_LOG_ANSWERS:
            raise ValueError(
                f"deleted_before_log must be one of {replication.DELETED_BEFORE_LOG_ANSWERS}, "
                f"not {deleted_before_log!r}"
            )
        self.db_path = Path(db_path)
        self.cert_dir = Path(cert_dir)
        self.host = host
        self._requested_port = port
        self.credentials = Credentials(
            username, password, client_id, client_secret, security_token=security_token
        )
        self.state = SandboxState(
            db_path=self.db_path,
            sessions=SessionRegistry(self.credentials),
            clock=clock,
            api_limit=api_limit,
            deleted_before_log=deleted_before_log,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        certs = ensure_certificates(self.cert_dir)
        self.ca_cert_path: Path = certs.ca_cert
        self._certs = certs

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind the port and serve in a background thread; return once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._socket = sock
        config = uvicorn.Config(
            create_app(self.state),
            ssl_certfile=str(self._certs.server_cert),
            ssl_keyfile=str(self._certs.server_key),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            # Large enough that over-long URIs reach the app and get Salesforce's own error.
            h11_max_incomplete_event_size=64 * 1024,
            timeout_graceful_shutdown=2,
        )
        # After the Config: it (re)configures uvicorn's loggers.
        error_log = logging.getLogger("uvicorn.error")
        if quiet_deliberate_cuts not in error_log.filters:
            error_log.addFilter(quiet_deliberate_cuts)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name="sandbox-crm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, loop = self._server, self._loop
        if server is not None and loop is not None:
            # RuntimeError: the loop already ended (the server thread died on its own).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_begin_shutdown, server)
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = self._loop = None

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        asyncio.run(main())

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on (known once started)."""
        if self._socket is None:
            raise RuntimeError("the sandbox server is not running")
        return int(self._socket.getsockname()[1])

    @property
    def instance_url(self) -> str:
        """``https://127.0.0.1:PORT``: what simple-salesforce takes as ``instance_url``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return self.instance_url + TOKEN_PATH

    def soap_login_url(self, api_version: str = "59.0") -> str:
        """The SOAP ``login()`` endpoint (partner API) for ``api_version``."""
        return self.instance_url + SOAP_LOGIN_PATH.format(version=api_version)

    # --- test controls and counters ------------------------------------------------------------

    def inject_fault(
        self,
        *,
        path_contains: str,
        status: int,
        error_code: str,
        message: str | None = None,
        times: int | None = None,
        method: str | None = None,
        probability: float | None = None,
        seed: int = 0,
    ) -> None:
        """Answer requests whose path contains ``path_contains`` with a Salesforce error.

        The next request by default, the next ``times`` ones, or with ``probability`` a share of
        them drawn from ``random.Random(seed)`` (until :meth:`clear_faults`, or ``times`` hits).
        Example: ``inject_fault(path_contains="/query", status=503,
        error_code="SERVER_UNAVAILABLE", times=2)``.
        """
        self.state.faults.inject(
            path_contains=path_contains,
            status=status,
            error_code=error_code,
            message=message,
            times=times,
            method=method,
            probability=probability,
            seed=seed,
        )

    def drop_connections(
        self,
        *,
        path_contains: str,
        times: int | None = None,
        method: str | None = None,
        probability: float | None = None,
        seed: int = 0,
        chunked: bool = False,
    ) -> None:
        """Serve requests whose path contains ``path_contains``, but close the connection after
        the headers and half of the body (``requests`` raises ``ChunkedEncodingError``).

        Which requests: as :meth:`inject_fault`. The request itself is handled, committed and
        counted as usual (the CRM did the work; the answer got lost), which is how a lost
        create or upsert answer is tested, e.g. ``drop_connections(path_contains=
        "/composite/sobjects/Lead/ActOn_Contact_Id__c", method="PATCH")``. ``chunked`` cuts a
        chunked body instead of one with a too-large ``Content-Length``. Example:
        ``drop_connections(path_contains="/query", probability=0.4, seed=7)``.
        """
        self.state.faults.drop(
            path_contains=path_contains,
            times=times,
            method=method,
            probability=probability,
            seed=seed,
            chunked=chunked,
        )

    def fail_query_jobs(
        self,
        *,
        sobject: str | None = None,
        message: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        seed: int = 0,
    ) -> None:
        """Make Bulk API 2.0 query jobs end ``Failed`` instead of ``JobComplete``.

        The next query job to finish (``times`` ones, or with ``probability`` a share drawn from
        ``random.Random(seed)``), on ``sobject`` if given, ends ``Failed`` with ``message`` (a
        QUERY_TIMEOUT text by default) as its ``errorMessage``; every request about it is
        answered normally. Example: ``fail_query_jobs(sobject="Lead", times=1)``; simple-
        salesforce's ``sf.bulk2.Lead.query(...)`` then raises ``SalesforceOperationError``.
        """
        self.state.faults.fail_query_jobs(
            sobject=sobject, message=message, times=times, probability=probability, seed=seed
        )

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        self.state.faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many more requests the faults armed with a ``times`` limit will hit."""
        return self.state.faults.pending

    @property
    def faults_served(self) -> int:
        """How many requests got an injected error answer."""
        return self.state.faults.errors_served

    @property
    def connections_dropped(self) -> int:
        """How many responses were cut mid-body by :meth:`drop_connections`."""
        return self.state.faults.connections_dropped

    @property
    def query_jobs_failed(self) -> int:
        """How many query jobs ended ``Failed`` by :meth:`fail_query_jobs`."""
        return self.state.faults.query_jobs_failed

    def revoke_sessions(self) -> None:
        """Expire every issued access token (the next call answers 401 INVALID_SESSION_ID)."""
        self.state.sessions.revoke_all()

    def _counter(self, key: str) -> int:
        conn = store.connect(self.db_path)
        try:
            return store.read_counter(conn, key)
        finally:
            conn.close()

    @property
    def api_usage(self) -> int:
        """API requests counted so far (stored in the database, so reseeding resets it)."""
        return self._counter(store.API_USAGE_KEY)

    @property
    def api_limit(self) -> int:
        """The daily API allocation reported in ``Sforce-Limit-Info``."""
        return self.state.api_limit

    @property
    def deletes_refused(self) -> int:
        """DELETE requests received and refused (stored in the database)."""
        return self._counter(store.DELETES_REFUSED_KEY)

    def reset_api_usage(self) -> None:
        """Set the API usage counter back to zero (a new 24-hour window)."""
        conn = store.connect(self.db_path)
        try:
            with conn:
                store.set_meta(conn, store.API_USAGE_KEY, "0")
        finally:
            conn.close()

    def session(self) -> requests.Session:
        """A ``requests.Session`` trusting the sandbox certificate; see :func:`trusting_session`."""
        return trusting_session(self.ca_cert_path)


def trusting_session(ca_cert_path: Path) -> requests.Session:
    """A ``requests.Session`` verifying TLS against ``ca_cert_path`` only.

    ``trust_env`` is switched off because requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` from the environment override ``Session.verify`` (psf/requests#3829),
    and because proxy variables must not divert loopback traffic.
    """
    http = requests.Session()
    http.verify = str(ca_cert_path)
    http.trust_env = False
    return http


def _begin_shutdown(server: uvicorn.Server) -> None:
    """Ask uvicorn to exit, first dropping idle keep-alive connections (on the server's loop).

    uvicorn closes idle TLS connections politely and then waits for the client's close_notify,
    which pooled client connections never send: stopping would stall for seconds. Connections
    still busy with a request are left to uvicorn's graceful shutdown.
    """
    server.should_exit = True
    for connection in list(server.server_state.connections):
        cycle = getattr(connection, "cycle", None)
        if cycle is None or getattr(cycle, "response_complete", True):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()


def login(server: SandboxServer, session: requests.Session | None = None) -> tuple[str, str]:
    """Log in with the server's password grant; return ``(instance_url, access_token)``."""
    http = session or server.session()
    response = http.post(
        server.token_url,
        data={
            "grant_type": "password",
            "username": server.credentials.username,
            "password": server.credentials.password,
        },
        timeout=10,
    )
    response.raise_for_status()
    body = response.json()
    return str(body["instance_url"]), str(body["access_token"])
