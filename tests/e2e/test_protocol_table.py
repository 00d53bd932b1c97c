"""The error table of ``scopegen.protocol``, row by row, against everything that speaks it.

One real server (token, 0.5 s call timeout, 64 KiB body limit, one worker)
produces every row's answer once. For each row the test checks that the
server answered the row's status, code, fields and headers; that the
served ``/openapi.json`` documents it; that the generated client's
``_exceptions.py`` maps it to the row's class (by code, and by bare status
where the row says so) and its ``_base_client.py`` retries exactly the
table's retry statuses; and that the MCP bridge reports it as
``code (HTTP status)`` and retries it only where the table says so.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from scopegen import protocol
from scopegen.analyze import analyze_file
from scopegen.emit import emit_client
from scopegen.emit.openapi import ERROR_CODES
from scopegen.mcp import Remote
from scopegen.mcp._remote import outcome_from_response
from tests._serving import RunningServer, running_server

HERE = Path(__file__).resolve().parents[1]
BASIC = HERE / "interfaces" / "server_basic.py"
TOKEN = "table-token"
PACKAGE = "protocol_table_client"
ROWS = {e.code: e for e in protocol.ERRORS}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    args = ["--call-timeout", "0.5", "--max-body", "65536", "--max-concurrency", "1"]
    args += ["--max-jobs", "2"]
    with running_server(BASIC, token=TOKEN, args=args) as srv:
        yield srv


def _wait_healthy(server: RunningServer) -> None:
    """Wait until no worker is stuck (``/healthz`` answers 200 again)."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "a worker stayed stuck"
        time.sleep(0.05)


def _stuck_worker(server: RunningServer, seconds: float = 1.5) -> threading.Thread:
    """Start a call that gets its 504 at 0.5 s and keeps the only worker until ``seconds``."""

    def run() -> None:
        httpx.post(
            f"{server.url}/v1/call/sleepy",
            json={"seconds": seconds},
            headers=server.headers,
            timeout=30,
        )

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.8)  # past the timeout tick: the worker now counts as stuck
    return thread


def _requests(server: RunningServer) -> dict[str, Callable[[], httpx.Response]]:
    url, auth = server.url, server.headers

    def post(name: str, body: bytes, headers: dict[str, str] = auth) -> httpx.Response:
        return httpx.post(f"{url}/v1/call/{name}", content=body, headers=headers, timeout=30)

    def unavailable() -> httpx.Response:
        thread = _stuck_worker(server)
        try:
            return post("add", b'{"a": 1, "b": 2}')
        finally:
            thread.join()
            _wait_healthy(server)

    def too_many_jobs() -> httpx.Response:
        # Two unfinished jobs fill a table of two (one runs, one waits for the worker).
        jobs = [
            httpx.post(f"{url}/v1/jobs/sleepy", json={"seconds": 0.3}, headers=auth).json()
            for _ in range(2)
        ]
        try:
            return httpx.post(f"{url}/v1/jobs/sleepy", json={"seconds": 0.3}, headers=auth)
        finally:
            for job in jobs:
                path = f"{url}/v1/jobs/{job['job']['id']}"
                while httpx.get(path, headers=auth).json()["job"]["finished_at"] is None:
                    time.sleep(0.05)

    def timeout() -> httpx.Response:
        try:
            return post("sleepy", b'{"seconds": 0.9}')
        finally:
            _wait_healthy(server)

    return {
        "bad_request": lambda: post("add", b"{"),
        "unauthorized": lambda: post("add", b'{"a": 1, "b": 2}', {}),
        "unknown_function": lambda: post("nope", b"{}"),
        "unknown_job": lambda: httpx.get(f"{url}/v1/jobs/nope", headers=auth),
        "too_many_jobs": too_many_jobs,
        "not_found": lambda: httpx.get(f"{url}/nope", headers=auth),
        "method_not_allowed": lambda: httpx.get(f"{url}/v1/call/add", headers=auth),
        "payload_too_large": lambda: post("echo", b'{"value": "' + b"x" * 70_000 + b'"}'),
        "invalid_arguments": lambda: post("add", b'{"a": 1}'),
        "function_error": lambda: post("boom", b'{"message": "it broke"}'),
        "unserializable_result": lambda: post("tensor", b"{}"),
        "unavailable": unavailable,
        "timeout": timeout,
    }


# Where each row's request went: (OpenAPI path, method).
_ROUTES = {
    "unknown_function": ("/v1/call/nope", "post"),
    "unknown_job": ("/v1/jobs/{job_id}", "get"),
    "too_many_jobs": ("/v1/jobs/sleepy", "post"),
    "not_found": ("/nope", "get"),
    "method_not_allowed": ("/v1/call/add", "get"),
    "payload_too_large": ("/v1/call/echo", "post"),
    "function_error": ("/v1/call/boom", "post"),
    "unserializable_result": ("/v1/call/tensor", "post"),
    "timeout": ("/v1/call/sleepy", "post"),
}
# Headers a row's answer carries besides content-type and x-request-id.
_HEADERS = {
    "unauthorized": {protocol.WWW_AUTHENTICATE_HEADER: "Bearer"},
    "method_not_allowed": {protocol.ALLOW_HEADER: "POST"},
    "unavailable": {protocol.RETRY_AFTER_HEADER: "1"},
    "too_many_jobs": {protocol.RETRY_AFTER_HEADER: "1"},
}
# Rows answered only on the job routes, where OpenAPI documents them.
_JOB_ROWS = {"unknown_job", "too_many_jobs"}


@pytest.fixture(scope="module")
def answers(server: RunningServer) -> dict[str, httpx.Response]:
    requests = _requests(server)
    assert set(requests) == set(ROWS), "every row of the table needs a request here"
    return {code: make() for code, make in requests.items()}


@pytest.fixture(scope="module")
def openapi_doc(server: RunningServer) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/openapi.json", headers=server.headers)
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


@pytest.fixture(scope="module")
def client_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """The generated client's ``_exceptions`` and ``_base_client``, imported from a build."""
    out = tmp_path_factory.mktemp("client")
    files = emit_client(analyze_file(BASIC).interface, package=PACKAGE)
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    src = str(out / PACKAGE / "src")
    sys.path.insert(0, src)
    try:
        yield {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in ("_exceptions", "_base_client")
        }
    finally:
        sys.path.remove(src)
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.mark.parametrize("code", list(ROWS))
def test_server_answers_the_row(code: str, answers: dict[str, httpx.Response]) -> None:
    row, r = ROWS[code], answers[code]
    assert r.status_code == row.status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers[protocol.REQUEST_ID_HEADER]
    error = r.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) == {"code", "message", *row.fields}
    for name, value in _HEADERS.get(code, {}).items():
        assert r.headers[name] == value
    # Only answers the clients retry say when to come back.
    assert (protocol.RETRY_AFTER_HEADER in r.headers) == row.retry


@pytest.mark.parametrize("code", list(ROWS))
def test_openapi_documents_the_row(
    code: str, answers: dict[str, httpx.Response], openapi_doc: dict[str, Any]
) -> None:
    row, r = ROWS[code], answers[code]
    codes, description = ERROR_CODES[row.status]
    assert code in codes
    assert row.description in description
    path, method = _ROUTES.get(code, ("/v1/call/add", "post"))
    operation = openapi_doc["paths"].get(path, {}).get(method)
    if not row.on_call and code not in _JOB_ROWS:
        # Answered only off the documented routes (an unknown name, path or method).
        assert operation is None
        return
    assert operation is not None
    response = operation["responses"][str(row.status)]
    assert response["description"] == description
    schema = response["content"]["application/json"]["schema"]
    root = {"$ref": "#/$defs/t", "$defs": {"t": schema}, "components": openapi_doc["components"]}
    errors = [e.message for e in Draft202012Validator(root).iter_errors(r.json())]
    assert not errors


@pytest.mark.parametrize("code", list(ROWS))
def test_generated_client_raises_the_rows_class(
    code: str, answers: dict[str, httpx.Response], client_modules: dict[str, ModuleType]
) -> None:
    row, r = ROWS[code], answers[code]
    exceptions = client_modules["_exceptions"]
    rid = r.headers[protocol.REQUEST_ID_HEADER]
    err = exceptions.error_from_payload(r.status_code, r.json(), rid, "")
    assert type(err).__name__ == row.client_class
    assert (err.code, err.status, err.request_id) == (code, row.status, rid)
    bare = exceptions.error_from_payload(row.status, None, None, "from a proxy")
    if row.for_status:
        assert type(bare).__name__ == row.client_class
    else:
        assert type(bare).__name__ != row.client_class


def test_generated_client_maps_exactly_the_table(client_modules: dict[str, ModuleType]) -> None:
    exceptions, base = client_modules["_exceptions"], client_modules["_base_client"]
    by_code = {c: cls.__name__ for c, cls in exceptions._BY_CODE.items()}
    rows = protocol.CLIENT_ERROR_ROWS
    assert by_code == {e.code: e.client_class for e in rows}
    by_status = {s: cls.__name__ for s, cls in exceptions._BY_STATUS.items()}
    assert by_status == {e.status: e.client_class for e in rows if e.for_status}
    assert set(exceptions.__all__) == protocol.CLIENT_ERROR_CLASSES | {"error_from_payload"}
    assert base.RETRY_STATUSES == protocol.RETRY_STATUSES
    assert base.DEFAULT_BASE_URL == protocol.DEFAULT_URL
    assert base.DEFAULT_MAX_RETRIES == protocol.MAX_RETRIES
    assert base.MAX_REDIRECTS == protocol.MAX_REDIRECTS
    assert (base.DEFAULT_TIMEOUT.read, base.DEFAULT_TIMEOUT.connect) == (
        protocol.READ_TIMEOUT,
        protocol.CONNECT_TIMEOUT,
    )


@pytest.mark.parametrize("row", protocol.PROXY_ERRORS, ids=lambda e: e.code)
def test_proxy_rows_are_known_by_status_to_the_client_and_the_bridge(
    row: protocol.ErrorCode, client_modules: dict[str, ModuleType]
) -> None:
    # No scopegen server sends these (a proxy in front of it does): a bare answer.
    exceptions, base = client_modules["_exceptions"], client_modules["_base_client"]
    bare = exceptions.error_from_payload(row.status, None, None, "from a proxy")
    assert type(bare).__name__ == row.client_class
    assert (row.status in base.RETRY_STATUSES) == row.retry
    outcome = outcome_from_response(row.status, b"from a proxy")
    assert outcome.text.startswith(f"{row.code} (HTTP {row.status}): ")


@pytest.mark.parametrize("code", list(ROWS))
def test_mcp_bridge_reports_the_row(code: str, answers: dict[str, httpx.Response]) -> None:
    row, r = ROWS[code], answers[code]
    outcome = outcome_from_response(r.status_code, r.content)
    assert not outcome.ok
    assert outcome.text.startswith(f"{code} (HTTP {row.status}): ")


def test_retry_rows_are_retried_by_the_client_and_the_bridge(
    server: RunningServer, client_modules: dict[str, ModuleType]
) -> None:
    # Each retry row's call did not run: after the server's Retry-After, the retry succeeds.
    # (too_many_jobs: tests/e2e/test_jobs.py; the job was not queued.)
    assert {e.code for e in protocol.ERRORS if e.retry} == {"unavailable", "too_many_jobs"}
    base = client_modules["_base_client"]
    with httpx.Client(headers=server.headers, timeout=30) as http:
        client = base.SyncAPIClient(server.url, token=TOKEN, http_client=http)
        thread = _stuck_worker(server)
        try:
            result = client._call("add", {"a": 2, "b": 3}, base.ResultType(int))
        finally:
            thread.join()
            _wait_healthy(server)
    assert result == 5

    remote = Remote.connect(server.url, token_env="T", environ={"T": TOKEN})

    async def through_bridge() -> tuple[bool, str]:
        async with remote.async_client() as http:
            outcome = await remote.call(http, "add", {"a": 2, "b": 3})
        return outcome.ok, outcome.text

    thread = _stuck_worker(server)
    try:
        ok, text = anyio.run(through_bridge)
    finally:
        thread.join()
        _wait_healthy(server)
    assert (ok, orjson.loads(text)) == (True, 5)
