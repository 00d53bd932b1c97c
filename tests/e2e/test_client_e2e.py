"""The generated client, installed in a fresh venv, against a real ``scopegen serve``.

``tests/interfaces/client_rich.py`` is built into the package ``sg_rich``,
pip-installed into a venv that has no scopegen, and driven by small scripts
run with that venv's interpreter. Transport behaviour the real server cannot
show (503, dropped connections, redirects) is checked against a tiny
``http.server`` in this process.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scopegen.analyze import analyze_file
from tests._serving import RunningServer, running_server
from tests._venvs import Venv, install_client, shared_venv

ROOT = Path(__file__).resolve().parents[2]
RICH = ROOT / "tests" / "interfaces" / "client_rich.py"
OTHER = ROOT / "tests" / "interfaces" / "client_other.py"
TOKEN = "client-test-token"
PACKAGE = "sg_rich"


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return shared_venv(tmp_path_factory)


@pytest.fixture(scope="module")
def client(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The client package of ``client_rich.py``, installed in the venv."""
    install_client(venv, RICH, PACKAGE, tmp_path_factory)
    return PACKAGE


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    args = ["--call-timeout", "1", "--max-body", "100000", "--max-concurrency", "4"]
    with running_server(RICH, token=TOKEN, args=args) as srv:
        yield srv


@pytest.fixture(scope="module")
def other_server() -> Iterator[RunningServer]:
    with running_server(OTHER) as srv:
        yield srv


def run(venv: Venv, code: str, **env: str) -> str:
    """Run a client script in the venv; its assertions fail the test with their output."""
    prelude = "import asyncio, os, time, warnings\nimport httpx\n"
    return venv.run_python(prelude + textwrap.dedent(code), env=env).stdout


def connect(srv: RunningServer, **more: str) -> dict[str, str]:
    return {"URL": srv.url, "TOKEN": TOKEN, **more}


# --------------------------------------------------------------------------- calls


def test_sync_client_calls_every_kind_of_function_and_validates_results(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        from sg_rich import Client, types
        with Client(base_url=os.environ["URL"], token=os.environ["TOKEN"]) as c:
            assert c.echo("hi") == "hi"
            # A non-literal default is left out: the server applies DEFAULT_GREETING.
            assert c.greet("Ada") == "Hello, Ada!"
            assert c.greet("Ada", "Hi", punctuation=".") == "Hi, Ada."
            r = c.make_report(
                "t",
                color=types.Color.BLUE,
                level=types.Level.HIGH,
                spans=[types.Span(start=0, end=2, label="x"), types.Span(start=3, end=4)],
                box=types.Box(width=2.0, height=3.0),
            )
            assert isinstance(r, types.Report), r
            assert r.color is types.Color.BLUE and r.level is types.Level.HIGH
            assert isinstance(r.box, types.Box) and r.area == 6.0
            assert r.spans[0].label == "x" and r.spans[1].label is None
            assert c.make_report("d").color is types.Color.RED
            # Unset model fields are not sent: the server's dataclass default applies.
            assert c.box_area(types.Box(width=2.5)) == 2.5
            p = c.pair(1)
            assert p == (1, 2) and isinstance(p, tuple)
            assert c.options("n", a=1, b="x") == {"name": "n", "a": 1, "b": "x"}
            assert c.maybe() is None and c.maybe(3) == 6
            assert c.stats([1.0, 2.5], weights={"w": 1.0}) == {
                "n": 2, "total": 3.5, "weights": {"w": 1.0}
            }
            m = c.meta()
            assert (m.schema_, m.model_id, m.json_) == ("v1", "org/model", 3)
            assert c.slow_add(2, 3) == 5
            assert c.fail.__doc__ == "Always raises ``ValueError(message)``."
            assert c.base_url == os.environ["URL"] and c.token == os.environ["TOKEN"]
            assert c.timeout.read == 600.0 and c.timeout.connect == 10.0
            assert c.max_retries == 2
        """,
        **connect(server),
    )


def test_async_client_makes_50_concurrent_calls(
    venv: Venv, client: str, server: RunningServer
) -> None:
    out = run(
        venv,
        """
        from sg_rich import AsyncClient, types

        async def main():
            async with AsyncClient(os.environ["URL"], token=os.environ["TOKEN"]) as ac:
                assert (await ac.make_report("a")).title == "a"
                t0 = time.perf_counter()
                results = await asyncio.gather(
                    *(ac.slow_add(i, 1, delay=0.5) for i in range(50))
                )
                elapsed = time.perf_counter() - t0
            assert results == [i + 1 for i in range(50)], results
            print(elapsed)

        asyncio.run(main())
        """,
        **connect(server),
    )
    # One after another would take 25 s; concurrently, about 0.5 s.
    assert float(out) < 5.0


def test_module_functions_use_a_default_client_from_package_env_vars(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        import sg_rich
        assert sg_rich.echo("module") == "module"
        assert sg_rich.pair(4, b=5) == (4, 5)
        assert sg_rich.greet("Bo", punctuation=".") == "Hello, Bo."
        assert sg_rich.make_report("m", color=sg_rich.types.Color.GREEN).color.value == "green"
        """,
        SG_RICH_URL=server.url,
        SG_RICH_TOKEN=TOKEN,
    )


def test_module_functions_fall_back_to_scopegen_env_vars(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        import sg_rich
        assert sg_rich.echo("fallback") == "fallback"
        """,
        SCOPEGEN_URL=server.url,
        SCOPEGEN_TOKEN=TOKEN,
    )


def test_no_warning_when_the_server_serves_the_same_interface(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        warnings.simplefilter("error")
        from sg_rich import Client
        with Client(os.environ["URL"], token=os.environ["TOKEN"]) as c:
            assert c.echo("a") == "a"
        """,
        **connect(server),
    )


def test_hash_mismatch_warns_once_naming_both_hashes_and_the_fix(
    venv: Venv, client: str, other_server: RunningServer
) -> None:
    mine = analyze_file(RICH).interface.hash
    theirs = analyze_file(OTHER).interface.hash
    out = run(
        venv,
        """
        from sg_rich import Client, InterfaceMismatchWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Client(os.environ["URL"]) as c:
                assert c.echo("a") == "a"
                assert c.echo("b") == "b"
            with Client(os.environ["URL"]) as c:
                assert c.echo("c") == "c"  # the same server: warned already
        mismatches = [w for w in caught if issubclass(w.category, InterfaceMismatchWarning)]
        assert len(mismatches) == 1, [str(w.message) for w in caught]
        print(mismatches[0].message)
        print("at", mismatches[0].filename)
        """,
        URL=other_server.url,
    )
    assert mine in out and theirs in out
    assert "scopegen build" in out
    # The warning points at the caller's code, not inside the package.
    assert "at <string>" in out


def test_hash_mismatch_warning_from_a_module_function_points_at_the_caller(
    venv: Venv, client: str, other_server: RunningServer
) -> None:
    run(
        venv,
        """
        import sg_rich
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert sg_rich.echo("a") == "a"
        (w,) = caught
        assert issubclass(w.category, sg_rich.InterfaceMismatchWarning)
        assert w.filename == "<string>", w.filename
        """,
        SG_RICH_URL=other_server.url,
    )


# --------------------------------------------------------------------------- errors


def _expect_error(venv: Venv, env: dict[str, str], call: str, error: str, check: str = "") -> None:
    run(
        venv,
        f"""
        import sg_rich
        from sg_rich import *
        from sg_rich import types
        c = Client(os.environ["URL"], token=os.environ.get("TOKEN"))
        try:
            {call}
        except {error} as exc:
            e = exc
        else:
            raise AssertionError("no {error} raised")
        assert type(e) is {error}, type(e)
        if isinstance(e, RemoteError):
            assert e.request_id, "every answer carries x-request-id"
        {check}
        """,
        **env,
    )


def test_invalid_arguments_carries_details(venv: Venv, client: str, server: RunningServer) -> None:
    _expect_error(
        venv,
        connect(server),
        "c.echo(5)  # type: ignore[arg-type]",
        "InvalidArguments",
        "assert e.status == 422 and e.code == 'invalid_arguments' and e.details, vars(e)",
    )


def test_function_error_carries_remote_type_and_traceback(
    venv: Venv, client: str, server: RunningServer
) -> None:
    _expect_error(
        venv,
        connect(server),
        "c.fail('boom')",
        "FunctionError",
        "assert e.status == 500 and e.remote_type == 'ValueError' and 'boom' in str(e);"
        " assert 'raise ValueError' in e.remote_traceback",
    )


def test_wrong_token_is_unauthorized(venv: Venv, client: str, server: RunningServer) -> None:
    _expect_error(
        venv,
        connect(server, TOKEN="wrong"),
        "c.echo('x')",
        "Unauthorized",
        "assert e.status == 401",
    )


def test_function_missing_on_the_server_is_unknown_function(
    venv: Venv, client: str, other_server: RunningServer
) -> None:
    _expect_error(
        venv,
        {"URL": other_server.url},
        "c.maybe(1)",
        "UnknownFunction",
        "assert e.status == 404 and e.code == 'unknown_function'",
    )


def test_result_of_another_type_is_invalid_response(
    venv: Venv, client: str, other_server: RunningServer
) -> None:
    _expect_error(venv, {"URL": other_server.url}, "c.pair(1)", "InvalidResponse")


def test_call_past_the_server_timeout_is_call_timeout(
    venv: Venv, client: str, server: RunningServer
) -> None:
    _expect_error(venv, connect(server), "c.nap(1.3)", "CallTimeout", "assert e.status == 504")


def test_oversized_arguments_are_payload_too_large(
    venv: Venv, client: str, server: RunningServer
) -> None:
    _expect_error(
        venv,
        connect(server),
        "c.echo('x' * 200_000)",
        "PayloadTooLarge",
        "assert e.status == 413",
    )


def test_non_json_result_is_unserializable_result(
    venv: Venv, client: str, server: RunningServer
) -> None:
    _expect_error(
        venv,
        connect(server),
        "c.not_json()",
        "UnserializableResult",
        "assert e.status == 500 and 'set' in e.message",
    )


def test_wrong_base_path_is_not_found(venv: Venv, client: str, server: RunningServer) -> None:
    _expect_error(
        venv,
        connect(server, URL=server.url + "/nope"),
        "c.echo('x')",
        "NotFound",
        "assert e.status == 404 and e.code == 'not_found'",
    )


# An injected httpx client whose transport rewrites call requests: how a
# malformed body or a wrong method reaches the real server.
_REWRITE = """
class Rewrite(httpx.BaseTransport):
    def __init__(self, method=None, body=None):
        self.inner = httpx.HTTPTransport()
        self.method, self.body = method, body

    def handle_request(self, request):
        if "/v1/call/" in request.url.path:
            headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
            body = self.body if self.body is not None else request.read()
            request = httpx.Request(
                self.method or request.method, request.url, headers=headers, content=body
            )
        return self.inner.handle_request(request)
"""


def test_body_that_is_not_an_object_is_bad_request(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        _REWRITE
        + textwrap.dedent(
            """
        from sg_rich import BadRequest, Client
        http = httpx.Client(transport=Rewrite(body=b"[1, 2]"))
        c = Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http)
        try:
            c.echo("x")
        except BadRequest as e:
            assert e.status == 400 and e.code == "bad_request", vars(e)
        else:
            raise AssertionError("no BadRequest")
        """
        ),
        **connect(server),
    )


def test_wrong_method_is_method_not_allowed(venv: Venv, client: str, server: RunningServer) -> None:
    run(
        venv,
        _REWRITE
        + textwrap.dedent(
            """
        from sg_rich import Client, MethodNotAllowed
        http = httpx.Client(transport=Rewrite(method="PUT"))
        c = Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http)
        try:
            c.echo("x")
        except MethodNotAllowed as e:
            assert e.status == 405 and e.code == "method_not_allowed", vars(e)
        else:
            raise AssertionError("no MethodNotAllowed")
        """
        ),
        **connect(server),
    )


def test_injected_http_client_is_used_and_left_open(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        from sg_rich import Client
        seen = []
        http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
        with Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http) as c:
            assert c.echo("x") == "x"
        # Drift comes with each answer (a header): no manifest request first.
        assert seen == ["/v1/call/echo"], seen
        assert not http.is_closed  # its owner closes it
        """,
        **connect(server),
    )


# --------------------------------------------------------------------------- transport


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_port_raises_connection_failed_after_the_configured_retries(
    venv: Venv, client: str
) -> None:
    out = run(
        venv,
        """
        from sg_rich import Client, ConnectionFailed
        for retries in (0, 2):
            attempts = []
            http = httpx.Client(event_hooks={"request": [attempts.append]})
            c = Client(os.environ["URL"], max_retries=retries, http_client=http)
            t0 = time.perf_counter()
            try:
                c.echo("x")
            except ConnectionFailed as e:
                assert isinstance(e.__cause__, httpx.ConnectError), repr(e.__cause__)
            else:
                raise AssertionError("no ConnectionFailed")
            print(retries, len(attempts), round(time.perf_counter() - t0, 2))
        """,
        URL=f"http://127.0.0.1:{_free_port()}",
    )
    rows = [line.split() for line in out.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("0", "1"), ("2", "3")]
    # Backoff: 0.5 s then 1 s, each shortened by at most a quarter of jitter.
    assert float(rows[1][2]) >= 1.1


@dataclass
class _Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeServer:
    """A loopback HTTP server whose answers a test scripts: ``reply(seen) -> answer``.

    ``answer`` is ``(status, headers, body)``, or ``None`` to drop the
    connection without answering.
    """

    reply: Callable[[_Seen], tuple[int, dict[str, str], bytes] | None]
    seen: list[_Seen] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                seen = _Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
                fake.seen.append(seen)
                answer = fake.reply(seen)
                if answer is None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, body = answer
                self.send_response(status)
                for k, v in {"content-type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def calls(self) -> list[_Seen]:
        return [s for s in self.seen if s.path.startswith("/v1/call/")]


def _result(value: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"x-request-id": "r1"}, json.dumps({"result": value}).encode()


def _functions_or(
    answer: Callable[[_Seen], tuple[int, dict[str, str], bytes] | None],
) -> Callable[[_Seen], tuple[int, dict[str, str], bytes] | None]:
    """Answer GET /v1/functions with the client's own hash; everything else with ``answer``."""
    own = analyze_file(RICH).interface.hash

    def reply(seen: _Seen) -> tuple[int, dict[str, str], bytes] | None:
        if seen.path == "/v1/functions":
            return 200, {}, json.dumps({"hash": own}).encode()
        return answer(seen)

    return reply


def test_503_is_retried_with_backoff_until_an_answer(venv: Venv, client: str) -> None:
    def reply(seen: _Seen) -> tuple[int, dict[str, str], bytes]:
        if len([s for s in fake.calls()]) < 3:
            body = b'{"error": {"code": "unavailable", "message": "warming up"}}'
            return 503, {"retry-after": "0"}, body
        return _result("ok")

    with FakeServer(_functions_or(reply)) as fake:
        run(
            venv,
            """
            from sg_rich import Client
            assert Client(os.environ["URL"], max_retries=3).echo("x") == "ok"
            """,
            URL=fake.url,
        )
        assert len(fake.calls()) == 3


def test_503_past_the_retries_is_service_unavailable(venv: Venv, client: str) -> None:
    body = b'{"error": {"code": "unavailable", "message": "no capacity"}}'
    with FakeServer(_functions_or(lambda s: (503, {"retry-after": "0"}, body))) as fake:
        run(
            venv,
            """
            from sg_rich import Client, ServiceUnavailable
            try:
                Client(os.environ["URL"], max_retries=1).echo("x")
            except ServiceUnavailable as e:
                assert e.status == 503 and e.message == "no capacity"
            else:
                raise AssertionError("no ServiceUnavailable")
            """,
            URL=fake.url,
        )
        assert len(fake.calls()) == 2


def test_connection_dropped_after_the_request_is_sent_is_not_retried(
    venv: Venv, client: str
) -> None:
    with FakeServer(_functions_or(lambda s: None)) as fake:
        run(
            venv,
            """
            from sg_rich import Client, ConnectionFailed, ConnectionLost
            try:
                Client(os.environ["URL"], max_retries=3).echo("x")
            except ConnectionLost as e:
                assert not isinstance(e, ConnectionFailed)
                assert "may have run" in str(e)
            else:
                raise AssertionError("no ConnectionLost")
            """,
            URL=fake.url,
        )
        assert len(fake.calls()) == 1


def test_read_timeout_is_response_timeout_and_not_retried(venv: Venv, client: str) -> None:
    def slow(seen: _Seen) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.5)
        return _result("late")

    with FakeServer(_functions_or(slow)) as fake:
        run(
            venv,
            """
            from sg_rich import Client, ResponseTimeout
            try:
                Client(os.environ["URL"], timeout=0.5, max_retries=3).echo("x")
            except ResponseTimeout:
                pass
            else:
                raise AssertionError("no ResponseTimeout")
            """,
            URL=fake.url,
        )
        assert len(fake.calls()) == 1


def test_303_answers_are_followed_with_get(venv: Venv, client: str) -> None:
    def reply(seen: _Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.method == "POST":
            return 303, {"location": "/poll/1"}, b""
        if seen.path == "/poll/1":
            return 303, {"location": "/poll/2"}, b""  # Modal may answer "not yet" again
        return _result("done")

    with FakeServer(_functions_or(reply)) as fake:
        run(
            venv,
            """
            from sg_rich import Client
            assert Client(os.environ["URL"]).echo("x") == "done"
            """,
            URL=fake.url,
        )
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/v1/call/echo"),
        ("GET", "/poll/1"),
        ("GET", "/poll/2"),
    ]


def test_modal_proxy_auth_and_bearer_headers_are_sent(venv: Venv, client: str) -> None:
    with FakeServer(_functions_or(lambda s: _result("ok"))) as fake:
        run(
            venv,
            """
            import sg_rich
            assert sg_rich.echo("x") == "ok"
            """,
            SG_RICH_URL=fake.url,
            SG_RICH_TOKEN="tok",
            MODAL_KEY="wk-123",
            MODAL_SECRET="ws-456",
        )
    call = fake.calls()[0]
    assert call.headers["modal-key"] == "wk-123"
    assert call.headers["modal-secret"] == "ws-456"
    assert call.headers["authorization"] == "Bearer tok"
    assert call.headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- options and tracing


@pytest.fixture(scope="module")
def patient_server() -> Iterator[RunningServer]:
    """No per-call timeout: a call may run for seconds."""
    with running_server(RICH, token=TOKEN) as srv:
        yield srv


def test_an_injected_httpx_client_keeps_the_gpu_timeout_for_a_6_5_s_call(
    venv: Venv, client: str, patient_server: RunningServer
) -> None:
    # httpx.Client() defaults to 5 s; the call would end in ResponseTimeout at 5.0 s.
    run(
        venv,
        """
        from sg_rich import Client
        with httpx.Client() as http:
            c = Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http)
            assert c.timeout.read == 600.0, c.timeout
            assert c.nap(6.5) == 6.5
        """,
        **connect(patient_server),
    )


def test_every_request_carries_a_request_id_the_server_echoes_on_errors(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        from sg_rich import Client, FunctionError
        sent = []
        hook = lambda r: sent.append(r.headers["x-request-id"])
        http = httpx.Client(event_hooks={"request": [hook]})
        c = Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http)
        try:
            c.fail("boom")
        except FunctionError as e:
            assert e.request_id == sent[-1], (e.request_id, sent)
            assert e.status_code == 500
        else:
            raise AssertionError("no FunctionError")
        assert c.echo("x") == "x"
        assert len(set(sent)) == 2
        """,
        **connect(server),
    )


def test_a_wrong_or_missing_token_names_the_variable_to_set(
    venv: Venv, client: str, server: RunningServer
) -> None:
    out = run(
        venv,
        """
        import sg_rich
        try:
            sg_rich.echo("x")
        except sg_rich.Unauthorized as e:
            print(e)
        """,
        SG_RICH_URL=server.url,
    )
    assert "hint: no token was sent: set SG_RICH_TOKEN (or SCOPEGEN_TOKEN)" in out


def test_with_options_sets_timeout_retries_and_headers_for_one_call(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        from sg_rich import Client, ResponseTimeout
        seen = []
        http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r)]})
        c = Client(os.environ["URL"], token=os.environ["TOKEN"], http_client=http)
        quick = c.with_options(timeout=0.3, max_retries=0, headers={"x-trace": "t1"})
        assert (quick.timeout.read, quick.max_retries) == (0.3, 0)
        assert (c.timeout.read, c.max_retries) == (600.0, 2)  # the original is unchanged
        assert quick.echo("x") == "x"
        assert seen[-1].headers["x-trace"] == "t1"
        try:
            quick.nap(0.8)
        except ResponseTimeout as e:
            assert e.request_id == seen[-1].headers["x-request-id"]
        else:
            raise AssertionError("no ResponseTimeout")
        quick.close()
        assert c.echo("y") == "y"  # closing the copy leaves the connections open
        assert "x-trace" not in seen[-1].headers
        """,
        **connect(server),
    )


def test_module_level_client_reads_timeout_and_retries_from_the_environment(
    venv: Venv, client: str, server: RunningServer
) -> None:
    out = run(
        venv,
        """
        import sg_rich
        from sg_rich._client import _default_client
        assert sg_rich.echo("x") == "x"
        c = _default_client()
        print(c.timeout.read, c.max_retries)
        """,
        SG_RICH_URL=server.url,
        SG_RICH_TOKEN=TOKEN,
        SG_RICH_TIMEOUT="42",
        SG_RICH_MAX_RETRIES="5",
    )
    assert out.split() == ["42.0", "5"]


def test_log_debug_prints_request_and_response_lines(
    venv: Venv, client: str, server: RunningServer
) -> None:
    proc = venv.run_python(
        "import sg_rich\nassert sg_rich.echo('x') == 'x'\n",
        env={"SG_RICH_URL": server.url, "SG_RICH_TOKEN": TOKEN, "SG_RICH_LOG": "debug"},
    )
    assert "POST " + server.url + "/v1/call/echo request_id=" in proc.stderr
    assert "HTTP 200 from" in proc.stderr


def test_raw_response_has_the_servers_timing_hash_and_our_request_id(
    venv: Venv, client: str, server: RunningServer
) -> None:
    run(
        venv,
        """
        import sg_rich
        from sg_rich import Client
        with Client(os.environ["URL"], token=os.environ["TOKEN"]) as c:
            raw = c.with_raw_response.nap(0.2)
            assert raw.parse() == 0.2 and raw.status_code == 200
            assert set(raw.server_timing) == {"queue", "run"}, raw.headers
            assert raw.server_timing["run"] >= 200.0 and raw.server_timing["queue"] >= 0.0
            assert raw.elapsed >= 0.2
            assert raw.headers["x-request-id"] == raw.request_id
            assert raw.headers["x-scopegen-interface-hash"] == sg_rich.__interface_hash__
        # Every answer carries the hash, errors and other routes too.
        r = httpx.get(os.environ["URL"] + "/nope")
        assert r.headers["x-scopegen-interface-hash"] == sg_rich.__interface_hash__
        """,
        **connect(server),
    )


def test_a_redeployed_interface_is_noticed_by_a_long_lived_client(
    venv: Venv, client: str, server: RunningServer, other_server: RunningServer
) -> None:
    # One client, two servers behind one URL in turn: a proxy that switches over.
    run(
        venv,
        _SWITCH
        + textwrap.dedent(
            """
        from sg_rich import Client, InterfaceMismatchWarning, RemoteError
        switch = Switch(os.environ["URL"])
        http = httpx.Client(transport=switch)
        c = Client("http://switch", token=os.environ["TOKEN"], http_client=http)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert c.echo("a") == "a"
            assert not caught
            switch.target = os.environ["OTHER"]
            assert c.echo("b") == "b"  # the other interface has echo too
            (w,) = caught
            assert issubclass(w.category, InterfaceMismatchWarning), w
            try:
                c.box_area({"width": 1.0})  # not on the other server
            except RemoteError as e:
                assert e.interface_mismatch and "regenerate" in str(e), str(e)
            else:
                raise AssertionError("no error")
        """
        ),
        OTHER=other_server.url,
        **connect(server),
    )


_SWITCH = """
class Switch(httpx.BaseTransport):
    def __init__(self, target):
        self.inner = httpx.HTTPTransport()
        self.target = target

    def handle_request(self, request):
        url = httpx.URL(self.target).join(request.url.raw_path.decode())
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        return self.inner.handle_request(
            httpx.Request(request.method, url, headers=headers, content=request.read())
        )
"""
