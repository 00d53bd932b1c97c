"""Security review, as tests (the threat model is in SECURITY.md).

Against a real ``scopegen serve`` of ``tests/interfaces/fault_basic.py``,
whose every function, and every name that must stay unreachable, leaves a
trace file when it runs:

- only exposed functions are reachable, whatever the path or its encoding;
- nothing on the wire path unpickles, evals, execs or compiles request data
  (the source is scanned, and the running server is watched with an audit hook);
- the token never shows in logs, responses, the manifest or generated files;
- tracebacks can be turned off, and arguments are not logged;
- without a token, ``scopegen serve`` refuses a public bind unless ``--insecure``.

Requests that clients would never send are written to a raw socket, so no
HTTP library normalises them first.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from scopegen.commands.build import generate, write_files
from tests._serving import RunningServer, running_server

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ROOT / "tests" / "interfaces" / "fault_basic.py"
TOKEN = "sec-token-d41c8e0b7fa2"
NEAR_MISS = TOKEN[:-1] + "Z"  # a wrong token is a secret too: it may be a typo of the real one
CANARY = "arg-canary-93be51"
EXPOSED = {
    "ping", "record", "boom", "exit_process", "interrupt", "async_exit", "async_interrupt",
    "slow", "async_slow", "fail_with", "crash",
}  # fmt: skip
# Names in fault_basic.py that must never run, whatever the request.
NEVER = ("_private_helper", "not_exposed", "imported_helper", "Widget")

# Installed through PYTHONPATH into the server process: records, with a timestamp,
# every audit event that would mean code or pickles built from data.
SITECUSTOMIZE = """
import os, sys, time
_path = os.environ.get("SCOPEGEN_AUDIT_LOG")
if _path:
    _out = open(_path, "a", buffering=1, encoding="utf-8")
    _WATCH = {
        "exec", "compile", "pickle.find_class", "marshal.loads", "marshal.load",
        "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn",
    }

    def _hook(event, args):
        if event not in _WATCH:
            return
        if event == "exec":
            code = args[0]
            detail = f"{getattr(code, 'co_filename', '?')}:{getattr(code, 'co_name', '?')}"
        elif event == "compile":
            detail = f"{args[1]!r} {args[0]!r}"[:300]
        else:
            detail = repr(args)[:300]
        _out.write(f"{time.time():.6f} {event} {detail}\\n")

    sys.addaudithook(_hook)
"""


def runs(traces: Path, name: str) -> list[str]:
    path = traces / f"{name}.ran"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-traces")


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-audit") / "audit.log"


@pytest.fixture(scope="module")
def server(
    traces: Path, audit_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    site = tmp_path_factory.mktemp("security-site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {
        "SCOPEGEN_FAULT_DIR": str(traces),
        "SCOPEGEN_AUDIT_LOG": str(audit_log),
        "PYTHONPATH": pythonpath,
    }
    with running_server(FAULTS, token=TOKEN, env=env, args=["--max-body", "100000"]) as srv:
        yield srv


def raw(
    srv: RunningServer,
    target: bytes | str,
    *,
    method: bytes = b"POST",
    body: bytes = b"{}",
    headers: bytes | None = None,
    token: str | None = TOKEN,
) -> tuple[int, bytes]:
    """Send one request exactly as written; return (status, body); status 0: no answer."""
    parts = urlsplit(srv.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if isinstance(target, str):
        target = target.encode("utf-8")
    if headers is None:
        headers = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    request = (
        method + b" " + target + b" HTTP/1.1\r\nHost: %s\r\n" % host.encode()
        + auth + headers + b"Connection: close\r\n\r\n" + body
    )  # fmt: skip
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/1.1 "):
        return 0, answer
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head[9:12]), payload


def error_code(payload: bytes) -> str | None:
    try:
        return str(json.loads(payload)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- reachability

# Everything here names something that is not an exposed function.
NAMES = [
    # private helpers, unexposed public functions, classes, module globals, imports
    *NEVER, "_trace", "_lock", "SECRET_GLOBAL", "TRACE_DIR", "expose", "get_model_path",
    "os", "sys", "time", "asyncio", "threading", "Path", "fault_helper", "annotations",
    # builtins and dunders
    "eval", "exec", "open", "compile", "getattr", "globals", "__import__", "__builtins__",
    "__class__", "__dict__", "__globals__", "__init__", "__call__", "__module__", "__name__",
    "__file__", "__loader__", "__spec__", "__all__", "__main__",
    # attribute paths through an exposed function
    "ping.__globals__", "ping.__code__", "ping.__call__", "record.__wrapped__",
    "ping/__globals__", "ping.__globals__.os", "fault_basic.not_exposed", "fault_basic/ping",
    # case, spacing, separators and trailing garbage
    "PING", "Ping", "ping/", "/ping", "ping//", "ping/extra", "ping;",
    "ping,", "ping.", "ping\\", "ping%20", "%20ping", "ping%00", "%00ping", "ping%0a",
    "ping%0d%0aX-Injected:%201", "ping%09", "",
    # traversal, plain and percent-encoded (once and twice)
    "..", "../ping", "../../healthz", "../v1/call/ping", "ping/../ping", "./ping",
    "%2e%2e/ping", "%2e%2e%2fping", "..%2fping", "..%2F..%2Fhealthz", "%2E%2E%5Cping",
    "..\\ping", "ping%2f..%2fnot_exposed", "%252e%252e%252fping", "%255F%255Fclass%255F%255F",
    "%255Fprivate_helper", "p%2569ng", "%25%32%65",
    # unicode lookalikes and invisible characters (percent-encoded UTF-8)
    "p%D1%96ng",  # Cyrillic i (U+0456)
    "%EF%BD%90%EF%BD%89%EF%BD%8E%EF%BD%87",  # fullwidth "ping" (NFKC folds it to ping)
    "ping%E2%80%8B",  # zero-width space
    "p%C4%B1ng",  # dotless i (U+0131)
    "pi%CC%87ng",  # i + combining dot
    "%EF%BC%BFprivate_helper",  # fullwidth low line
    "%C0%AEping",  # overlong UTF-8
    "%FF%FE",  # not UTF-8 at all
    # very long names
    "a" * 1000, "ping" * 2000, "_" * 7000,
]  # fmt: skip


def test_only_exposed_functions_are_reachable_by_any_name(
    server: RunningServer, traces: Path
) -> None:
    seen: dict[str, tuple[int, str | None]] = {}
    for name in NAMES:
        status, payload = raw(server, "/v1/call/" + name)
        seen[name[:40]] = (status, error_code(payload))
        assert status in (400, 404, 414, 431), (name[:80], status, payload[:200])
        if status == 404:
            assert error_code(payload) in ("unknown_function", "not_found"), payload[:200]
        assert TOKEN.encode() not in payload
    # Raw, unencoded non-ASCII and control bytes in the request line.
    for target in (
        "/v1/call/p\u0456ng".encode(),  # Cyrillic i
        "/v1/call/\uff50\uff49\uff4e\uff47".encode(),  # fullwidth
        b"/v1/call/ping\x00",
        b"/v1/call/\xff",
        b"/v1/call/ping\x7f",
    ):
        status, payload = raw(server, target)
        assert status in (0, 400, 404), (target, status, payload[:200])
    # A name far past any sane length: refused by the HTTP layer or as unknown.
    status, _ = raw(server, "/v1/call/" + "x" * 200_000)
    assert status in (0, 400, 404, 414, 431)
    for name in NEVER:
        assert runs(traces, name) == [], f"{name} ran"
    assert runs(traces, "ping") == []  # no spelling above is an alias of ping
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    print(f"\nreachability: {len(NAMES) + 6} bad names tried, none reached", file=sys.stderr)


def test_the_route_table_is_the_only_way_in(server: RunningServer, traces: Path) -> None:
    # Other prefixes, absolute-form targets, and every method but POST on a call.
    for target in (
        "/v1/ping", "/ping", "/v1/call", "/v1/call/", "/v2/call/ping", "/V1/call/ping",
        "/v1//call/ping", "//v1/call/ping", "/v1/call/../call/ping", "/healthz/../v1/call/ping",
        "/openapi.json/../v1/call/ping", "/v1/functions/ping", "*",
    ):  # fmt: skip
        status, payload = raw(server, target)
        assert status in (400, 404, 405), (target, status, payload[:200])
    for method in (b"GET", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"HEAD"):
        status, _ = raw(server, "/v1/call/record", method=method, body=b'{"tag": "m"}')
        assert status == 405, (method, status)
    # Percent-decoding happens once, in the HTTP server: this *is* ping, by design.
    status, payload = raw(server, "/v1/call/p%69ng")
    assert (status, json.loads(payload)) == (200, {"result": "pong"})
    assert runs(traces, "record") == []
    assert [n for n in NEVER if runs(traces, n)] == []


def test_manifest_and_openapi_list_exactly_the_exposed_functions(server: RunningServer) -> None:
    manifest = httpx.get(f"{server.url}/v1/functions", headers=server.headers).json()
    assert {f["name"] for f in manifest["functions"]} == EXPOSED
    spec = httpx.get(f"{server.url}/openapi.json", headers=server.headers).json()
    calls = {p.removeprefix("/v1/call/") for p in spec["paths"] if p.startswith("/v1/call/")}
    assert calls == EXPOSED


def test_bad_http_is_refused_and_the_server_keeps_serving(server: RunningServer) -> None:
    cases: list[tuple[str, bytes, bytes]] = [
        ("negative length", b"Content-Length: -1\r\n", b"{}"),
        ("two lengths", b"Content-Length: 2\r\nContent-Length: 5\r\n", b"{}"),
        ("length and chunked", b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"{}"),
        ("bad chunk", b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
        ("huge declared length", b"Content-Length: 99999999999\r\n", b"{}"),
        ("huge header", b"X-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n", b"{}"),
        ("header injection", b"X-A: b\rX-C: d\r\nContent-Length: 2\r\n", b"{}"),
        ("not JSON", b"Content-Length: 5\r\n", b"\xff\xfe{}!"),
        ("JSON array", b"Content-Length: 2\r\n", b"[]"),
        ("deep nesting", b"Content-Length: 20000\r\n", b"[" * 10_000 + b"]" * 10_000),
    ]
    for label, headers, body in cases:
        status, payload = raw(server, "/v1/call/record", headers=headers, body=body)
        assert status in (0, 400, 413, 422), (label, status, payload[:200])
    assert raw(server, "/v1/call/ping")[0] == 200
    print(f"\nbad HTTP: {len(cases)} malformed requests refused", file=sys.stderr)


# --------------------------------------------------------------------------- no pickle / eval

WIRE_PATH = [
    *sorted((ROOT / "scopegen" / "server").rglob("*.py")),
    ROOT / "scopegen" / "runtime.py",
    ROOT / "scopegen" / "spec.py",
    ROOT / "scopegen" / "emit" / "openapi.py",
]
FORBIDDEN_MODULES = {
    "pickle", "_pickle", "cPickle", "cloudpickle", "dill", "jsonpickle", "joblib", "marshal",
    "shelve", "yaml", "copyreg",
}  # fmt: skip
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input", "breakpoint"}
ATTRIBUTE_CALLS = {"eval", "exec", "__import__", "exec_module", "run_code", "run_path"}


def _dangerous(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        found += [f"{path.name}:{line}: import {n}" for n in names if n in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            # Builtins by name (``re.compile`` is fine); ``builtins.eval`` and the like too.
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{line}: {func.id}()")
            elif isinstance(func, ast.Attribute) and func.attr in ATTRIBUTE_CALLS:
                found.append(f"{path.name}:{line}: {func.attr}()")
    return found


def test_no_pickle_or_eval_in_the_server_source() -> None:
    found = [hit for path in WIRE_PATH for hit in _dangerous(path)]
    # The one executor is the loader's: it compiles the interface file (whole, or
    # statement by statement for `serve --reload`) and runs it. The file is
    # trusted, read from disk; nothing from a request is ever compiled or run.
    loader = [
        hit
        for hit in found
        if hit.startswith("_loader.py:") and hit.endswith((" compile()", " exec()"))
    ]
    assert sorted(hit.rpartition(" ")[2] for hit in loader) == ["compile()", "exec()"], found
    assert [hit for hit in found if hit not in loader] == []
    app = (ROOT / "scopegen" / "server" / "_app.py").read_text(encoding="utf-8")
    assert "hmac.compare_digest" in app  # the token compare is constant-time


def test_no_pickle_or_eval_in_the_generated_client(tmp_path: Path) -> None:
    result = generate(FAULTS, tmp_path, name="sg_sec")
    package = result.package
    write_files(tmp_path, package, result.files)
    sources = sorted((tmp_path / package).rglob("*.py"))
    assert sources
    assert [hit for path in sources for hit in _dangerous(path)] == []


def test_serving_requests_runs_no_code_and_no_pickle_built_from_them(
    server: RunningServer, audit_log: Path
) -> None:
    def battery() -> None:
        with server.client() as c:
            c.post("/v1/call/ping")
            c.post("/v1/call/record", json={"tag": "__import__('os').system('id')"})
            c.post("/v1/call/record", json={"tag": 1})
            c.post("/v1/call/record", content=b"{bad")
            c.post("/v1/call/record", content=b"\x80\x04\x95")  # a pickle header
            c.post("/v1/call/boom", json={"message": "eval('1+1')"})
            c.post("/v1/call/async_exit")
            c.post("/v1/call/nope")
            c.get("/v1/functions")
            c.get("/openapi.json")
        httpx.post(f"{server.url}/v1/call/record", json={"tag": "x"})  # no token

    battery()  # first use: lazy imports run their modules (exec + marshal of .pyc)
    time.sleep(0.3)
    start = time.time()
    battery()
    time.sleep(0.3)
    events = []
    for line in audit_log.read_text(encoding="utf-8").splitlines():
        stamp, _, event = line.partition(" ")
        if float(stamp) >= start:
            events.append(event)
    # Python 3.11+ parses the failing *source line of the interface* to draw ^^^ under it
    # when formatting a traceback: compile('<unknown>') of that line, nothing else.
    source = FAULTS.read_text(encoding="utf-8")
    unexpected = [
        e
        for e in events
        if not (
            e.startswith("compile '<unknown>' b'")
            and e.removeprefix("compile '<unknown>' b'").removesuffix("'") in source
        )
    ]
    assert unexpected == [], unexpected
    # The hook works: start-up (imports, the interface file) left plenty of events.
    assert len(audit_log.read_text(encoding="utf-8").splitlines()) > 100
    assert "Exception in ASGI application" not in server.log


# --------------------------------------------------------------------------- the token


def test_token_never_appears_in_logs_responses_or_the_manifest(server: RunningServer) -> None:
    bodies: list[bytes] = []
    with server.client() as c:
        for r in (
            c.post("/v1/call/ping"),
            c.post("/v1/call/boom"),
            c.post("/v1/call/record", json={"tag": 5}),
            c.post("/v1/call/nope"),
            c.get("/v1/call/ping"),
            c.get("/v1/functions"),
            c.get("/openapi.json"),
            c.get("/healthz"),
            c.get("/nowhere"),
        ):
            bodies.append(r.content + repr(r.headers.multi_items()).encode())
    for auth in (f"Bearer {NEAR_MISS}", NEAR_MISS, f"Basic {TOKEN}"):
        r = httpx.post(f"{server.url}/v1/call/ping", headers={"Authorization": auth})
        assert r.status_code == 401
        bodies.append(r.content + repr(r.headers.multi_items()).encode())
    time.sleep(0.1)  # the access log is flushed by a timer
    for secret in (TOKEN, NEAR_MISS):
        assert not [b for b in bodies if secret.encode() in b], secret
        assert secret not in server.log


def test_token_never_appears_in_generated_files(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCOPEGEN_TOKEN": TOKEN,
        "SG_FAULTS_TOKEN": TOKEN,
        "MODAL_KEY": TOKEN,
        "MODAL_SECRET": TOKEN,
    }
    outputs = []
    for args in (
        ["build", str(FAULTS), "-o", str(tmp_path / "out"), "--name", "sg_faults"],
        ["schema", str(FAULTS)],
        ["lint", str(FAULTS), "--format", "json"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "scopegen", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "modal_app.py" for p in files)
    leaked = [str(p) for p in files if TOKEN.encode() in p.read_bytes()]
    assert leaked == []
    assert not [o for o in outputs if TOKEN in o]


# --------------------------------------------------------------------------- tracebacks, logs


def test_hide_tracebacks_keeps_them_out_of_every_error_response(tmp_path: Path) -> None:
    env = {"SCOPEGEN_FAULT_DIR": str(tmp_path)}
    with running_server(FAULTS, env=env, args=["--hide-tracebacks"]) as srv:
        for name in ("boom", "crash", "exit_process", "async_exit", "async_interrupt"):
            body = {"payload": "x"} if name == "crash" else {}
            r = httpx.post(f"{srv.url}/v1/call/{name}", json=body)
            error = r.json()["error"]
            assert r.status_code == 500 and error["code"] == "function_error"
            assert "traceback" not in error and error["type"]
            assert "Traceback" not in r.text and "fault_basic.py" not in r.text
        log = srv.wait_for_log("crashed without echoing")
    assert "Traceback (most recent call last)" in log  # the operator's log keeps them
    # And without the flag, the caller gets the traceback (the default, for development).
    with running_server(FAULTS, env=env) as srv:
        error = httpx.post(f"{srv.url}/v1/call/boom").json()["error"]
        assert "fault_basic.py" in error["traceback"]


def test_arguments_are_not_logged(server: RunningServer) -> None:
    with server.client() as c:
        assert c.post("/v1/call/record", json={"tag": CANARY}).status_code == 200
        assert c.post("/v1/call/crash", json={"payload": CANARY}).status_code == 500
        assert c.post("/v1/call/record", json={"tag": [CANARY]}).status_code == 422
        assert c.post("/v1/call/record", json={"tag": "x", CANARY: 1}).status_code == 422
        assert c.post("/v1/call/record", content=f'{{"tag": "{CANARY}"'.encode()).status_code == 400
        assert c.post("/v1/call/slow", json={"seconds": CANARY}).status_code == 422
    server.wait_for_log("call slow 422")
    assert CANARY not in server.log


# --------------------------------------------------------------------------- public binds


@pytest.mark.parametrize(
    ("host", "token"),
    [("0.0.0.0", None), ("0.0.0.0", ""), ("::", None), ("192.0.2.10", None), ("example.com", "")],
)
def test_serve_without_a_token_refuses_a_public_bind(
    host: str, token: str | None, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SCOPEGEN_TOKEN"}
    env["SCOPEGEN_FAULT_DIR"] = str(tmp_path)
    if token is not None:
        env["SCOPEGEN_TOKEN"] = token  # empty means no token
    proc = subprocess.run(
        [sys.executable, "-m", "scopegen", "serve", str(FAULTS), "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--insecure" in proc.stderr and "SCOPEGEN_TOKEN" in proc.stderr
    assert runs(tmp_path, "module") == []  # refused before the interface was imported


def test_insecure_allows_a_public_bind_without_a_token(tmp_path: Path) -> None:
    env = {"SCOPEGEN_FAULT_DIR": str(tmp_path)}
    with running_server(FAULTS, env=env, args=["--host", "0.0.0.0", "--insecure"]) as srv:
        assert httpx.post(f"{srv.url}/v1/call/ping").json() == {"result": "pong"}
