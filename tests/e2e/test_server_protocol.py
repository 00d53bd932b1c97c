"""Protocol v1 over real HTTP: every row of docs/protocol.md's tables against uvicorn on 127.0.0.1.

One server (token, 0.5 s call timeout, 64 KiB body limit) answers every bad
request in turn; the last tests check it still answers correctly, under 200
concurrent calls. Every response body is also checked against the schema that
``/openapi.json`` documents for that route and status. The calls that make
sense in-process too are one table, ``tests/_protocol_cases.py``, which
``tests/testing/test_load.py`` runs through ``scopegen.testing.load``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests._protocol_cases import CASES, MAX_BODY, Case, encode
from tests._serving import RunningServer, running_server

HERE = Path(__file__).resolve().parents[1]
BASIC = HERE / "interfaces" / "server_basic.py"
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(
        BASIC, token=TOKEN, args=["--call-timeout", "0.5", "--max-body", str(MAX_BODY)]
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def documented(spec: dict[str, Any], path: str, method: str, r: httpx.Response) -> None:
    """The response's status is documented for the route and its body matches the schema."""
    responses = spec["paths"][path][method]["responses"]
    assert str(r.status_code) in responses, f"{r.status_code} undocumented for {method} {path}"
    schema = responses[str(r.status_code)]["content"]["application/json"]["schema"]
    root = {"$defs": {"target": schema}, "$ref": "#/$defs/target", "components": spec["components"]}
    errors = list(Draft202012Validator(root).iter_errors(r.json()))
    assert not errors, [e.message for e in errors]


def call(client: httpx.Client, name: str, args: Any = None, **kw: Any) -> httpx.Response:
    if args is None:
        return client.post(f"/v1/call/{name}", **kw)
    return client.post(f"/v1/call/{name}", content=orjson.dumps(args), **kw)


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"]
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    return err


def raw_http(server: RunningServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (no client-side path normalisation); read to close."""
    u = urlsplit(server.url)
    assert u.hostname and u.port
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def raw_get(server: RunningServer, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
    req = (
        f"{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    status, _, payload = raw_http(server, req)
    return status, orjson.loads(payload)


# --------------------------------------------------------------------------- the shared table


@pytest.mark.parametrize("case", CASES)
def test_protocol_case(
    client: httpx.Client, spec: dict[str, Any], manifest_names: set[str], case: Case
) -> None:
    r = call(client, case.function, content=encode(case.args))
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"]
    case.check(r.status_code, r.json())
    if case.function in manifest_names:
        documented(spec, f"/v1/call/{case.function}", "post", r)


@pytest.fixture(scope="module")
def manifest_names(client: httpx.Client) -> set[str]:
    return {f["name"] for f in client.get("/v1/functions").json()["functions"]}


# --------------------------------------------------------------------------- 200s


def test_empty_body_means_no_arguments(client: httpx.Client) -> None:
    assert call(client, "numbers").json() == {"result": {"sum": 3}}
    assert call(client, "echo", content=b"").json() == {"result": {"value": None, "flag": False}}


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    r = call(client, "add", {"a": 1, "b": 1}, headers={"x-request-id": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    a = call(client, "add", {"a": 1, "b": 1}).headers["x-request-id"]
    b = call(client, "add", {"a": 1, "b": 1}).headers["x-request-id"]
    assert a and b and a != b


def test_healthz_is_open(server: RunningServer, spec: dict[str, Any]) -> None:
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]
    documented(spec, "/healthz", "get", r)


def test_functions_route_serves_the_manifest(client: httpx.Client) -> None:
    manifest = client.get("/v1/functions").json()
    assert manifest["name"] == "server_basic"
    assert [f["name"] for f in manifest["functions"]][:3] == ["add", "scale", "echo"]


# --------------------------------------------------------------------------- 400


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"{'a': 1}",
        b"NaN",
        b'{"a": NaN, "b": 1}',
        b'{"a": Infinity}',
        b'{"value": -1e400}',
        b'{"value": "\\ud800"}',
        b"\xff\xfe",
        b"{}x",
    ],
    ids=[
        "truncated",
        "single-quotes",
        "nan",
        "nan-inside",
        "infinity",
        "overflow",
        "lone-surrogate",
        "not-utf8",
        "trailing",
    ],
)
def test_bad_json_is_400(client: httpx.Client, spec: dict[str, Any], body: bytes) -> None:
    r = call(client, "add", content=body)
    error_of(r, 400, "bad_request")
    documented(spec, "/v1/call/add", "post", r)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"a"', b"3", b"null", b"true"])
def test_non_object_body_is_400(client: httpx.Client, body: bytes) -> None:
    err = error_of(call(client, "add", content=body), 400, "bad_request")
    assert "object" in err["message"]


# --------------------------------------------------------------------------- 404 / 405


@pytest.mark.parametrize(
    "target",
    [
        "/v1/call/..%2F..%2Fhealthz",
        "/v1/call/%2e%2e/%2e%2e/healthz",
        "/v1/call/../v1/call/add",
        "/v1/call/add%00",
        "/v1/call/add/",
        "/v1/call/add/../boom",
        "/v1/call/%5F%5Fclass%5F%5F",
        "/v1/call/server_basic.SECRET",
    ],
)
def test_encoded_traversal_reaches_nothing(server: RunningServer, target: str) -> None:
    status, payload = raw_get(server, "POST", target, b"{}")
    assert status == 404
    assert payload["error"]["code"] in ("unknown_function", "not_found")


def test_unknown_route_is_404(client: httpx.Client) -> None:
    for path in ("/", "/v1", "/v1/call", "/v2/call/add", "/v1/functions/", "/docs"):
        err = error_of(client.get(path), 404, "not_found")
        assert err["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/call/add", "POST"),
        ("PUT", "/v1/call/add", "POST"),
        ("DELETE", "/v1/call/add", "POST"),
        ("POST", "/v1/functions", "GET"),
        ("POST", "/openapi.json", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_method_is_405(client: httpx.Client, method: str, path: str, allowed: str) -> None:
    r = client.request(method, path)
    error_of(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allowed


# --------------------------------------------------------------------------- 504


def test_timeout_is_504(client: httpx.Client, spec: dict[str, Any]) -> None:
    t0 = time.monotonic()
    r = call(client, "sleepy", {"seconds": 1.5})
    elapsed = time.monotonic() - t0
    err = error_of(r, 504, "timeout")
    assert "0.5" in err["message"]
    assert 0.4 < elapsed < 1.4
    documented(spec, "/v1/call/sleepy", "post", r)
    time.sleep(1.1)  # let the worker finish the abandoned call


def test_async_timeout_is_504(client: httpx.Client) -> None:
    t0 = time.monotonic()
    error_of(call(client, "async_sleepy", {"seconds": 5}), 504, "timeout")
    assert time.monotonic() - t0 < 3


def test_timeout_clock_starts_when_a_worker_picks_the_call_up(server: RunningServer) -> None:
    # One worker: the second call queues ~0.35 s, then runs 0.35 s; 0.7 s in all is
    # past the 0.5 s timeout, but its own run is not.
    results: list[int] = []

    def one() -> None:
        with server.client(timeout=30) as c:
            results.append(call(c, "sleepy", {"seconds": 0.35}).status_code)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]


# --------------------------------------------------------------------------- 413


def test_oversize_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"value": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    error_of(call(client, "echo", content=chunks()), 413, "payload_too_large")


def test_declared_oversize_is_refused_before_reading(server: RunningServer) -> None:
    # Headers only: the server must answer without waiting for a body that never comes.
    req = (
        f"POST /v1/call/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Length: 1000000000\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.monotonic()
    status, headers, body = raw_http(server, req)
    assert status == 413
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"
    assert headers["x-request-id"]
    assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "longer", "no-scheme", "basic", "prefix", "empty"],
)
def test_missing_or_wrong_token_is_401(
    server: RunningServer, spec: dict[str, Any], headers: dict[str, str]
) -> None:
    for method, path in (
        ("POST", "/v1/call/add"),
        ("POST", "/v1/call/nope"),
        ("GET", "/v1/functions"),
        ("GET", "/openapi.json"),
        ("GET", "/unknown"),
    ):
        r = httpx.request(method, f"{server.url}{path}", headers=headers, json={"a": 1, "b": 2})
        error_of(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        if path == "/v1/call/add":
            documented(spec, path, "post", r)


# --------------------------------------------------------------------------- survival


def test_bearer_scheme_is_case_insensitive(server: RunningServer) -> None:
    r = httpx.post(
        f"{server.url}/v1/call/add",
        json={"a": 1, "b": 2},
        headers={"Authorization": f"bearer {TOKEN}"},
    )
    assert r.json() == {"result": 3}


def test_access_log_has_one_line_per_call(server: RunningServer, client: httpx.Client) -> None:
    rid = "access-log-check-1"
    call(client, "add", {"a": 1, "b": 2}, headers={"x-request-id": rid})
    log = server.wait_for_log(rid)
    (line,) = [x for x in log.splitlines() if rid in x]
    assert " call add 200 " in line
    assert "ms" in line


def test_server_still_answers_after_every_bad_request(
    server: RunningServer, client: httpx.Client
) -> None:
    assert server.proc.poll() is None
    assert call(client, "add", {"a": 20, "b": 22}).json() == {"result": 42}
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}


def test_200_concurrent_calls_from_16_threads(server: RunningServer) -> None:
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(i: int) -> tuple[int, Any]:
        if not hasattr(local, "client"):
            local.client = server.client(timeout=60)
            clients.append(local.client)
        r = call(local.client, "add" if i % 2 else "async_add", {"a": i, "b": 1000})
        return r.status_code, r.json()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(200)))
    for c in clients:
        c.close()
    assert results == [(200, {"result": i + 1000}) for i in range(200)]
