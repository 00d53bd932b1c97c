"""Faults, one test each: what the server and the generated client do when things break.

The interface is ``tests/interfaces/fault_basic.py``; each of its functions
leaves a trace file in ``$SCOPEGEN_FAULT_DIR`` (``<name>.ran``, a line per
run), so a test can prove that a call ran once, or never. The client is the
package ``scopegen build`` generates from it, pip-installed in the session's
fresh venv and driven by small scripts (in the background when the test must
act on the server meanwhile: kill it, restart it, send it SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scopegen.commands.build import generate, write_files
from tests._serving import RunningServer, running_server
from tests._venvs import Venv, shared_venv

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ROOT / "tests" / "interfaces" / "fault_basic.py"
PACKAGE = "sg_faults"
TOKEN = "fault-token-7e2a"

PRELUDE = """\
import os, sys, threading, time
import httpx
from sg_faults import (
    CallTimeout, Client, ConnectionFailed, ConnectionLost, FunctionError, TransportError,
    Unauthorized,
)
URL, TOKEN = os.environ["URL"], os.environ.get("TOKEN")
"""


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return shared_venv(tmp_path_factory)


@pytest.fixture(scope="module")
def client(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The client package of ``fault_basic.py``, installed in the venv."""
    out = tmp_path_factory.mktemp("faults-build")
    result = generate(FAULTS, out, name=PACKAGE)
    package = result.package
    write_files(out, package, result.files)
    venv.install(out / package)
    return package


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    folder = tmp_path / "traces"
    folder.mkdir()
    return folder


@contextlib.contextmanager
def serve(traces: Path, *args: str, token: str | None = TOKEN) -> Iterator[RunningServer]:
    with running_server(
        FAULTS, token=token, args=args, env={"SCOPEGEN_FAULT_DIR": str(traces)}
    ) as srv:
        yield srv


def runs(traces: Path, name: str) -> list[str]:
    """The lines ``name`` wrote, one per run (empty: it never ran)."""
    path = traces / f"{name}.ran"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def run_client(venv: Venv, code: str, **env: str) -> str:
    return venv.run_python(PRELUDE + textwrap.dedent(code), env=env, timeout=120).stdout


def start_client(venv: Venv, code: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(venv.python), "-c", PRELUDE + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=venv.env(env),
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """Wait for a background client; fail with its output if it failed or hung."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the client hung past {timeout} s:\n{out}\n{err}") from None
    assert proc.returncode == 0, f"client failed ({proc.returncode}):\n{out}\n{err}"
    return out


def wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def values(out: str) -> dict[str, str]:
    """``key=value`` lines a client script printed."""
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# --------------------------------------------------------------------------- faults


def test_function_that_raises_is_500_and_the_next_call_is_fine(
    venv: Venv, client: str, traces: Path
) -> None:
    # sys.exit and KeyboardInterrupt too, in sync and async functions: none stops the server.
    with serve(traces) as srv:
        out = run_client(
            venv,
            """
            with Client(URL, token=TOKEN) as c:
                for name in ("boom", "exit_process", "interrupt", "async_exit", "async_interrupt"):
                    try:
                        getattr(c, name)()
                    except FunctionError as e:
                        assert e.status == 500 and e.code == "function_error", e
                        print(f"{name}={e.remote_type}")
                    else:
                        raise AssertionError(f"{name} did not fail")
                    assert c.ping() == "pong"
            """,
            URL=srv.url,
            TOKEN=TOKEN,
        )
        assert values(out) == {
            "boom": "ValueError",
            "exit_process": "SystemExit",
            "interrupt": "KeyboardInterrupt",
            "async_exit": "SystemExit",
            "async_interrupt": "KeyboardInterrupt",
        }
        assert srv.proc.poll() is None
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
    for name in ("boom", "exit_process", "interrupt", "async_exit", "async_interrupt"):
        assert len(runs(traces, name)) == 1, name
    assert len(runs(traces, "ping")) == 5


def test_function_hanging_past_the_timeout_is_504_and_the_server_still_serves(
    venv: Venv, client: str, traces: Path
) -> None:
    with serve(traces, "--call-timeout", "1") as srv:
        out = run_client(
            venv,
            """
            with Client(URL, token=TOKEN) as c:
                c.ping()
                t0 = time.perf_counter()
                try:
                    c.slow(4.0, "stuck")
                except CallTimeout as e:
                    assert e.status == 504 and e.code == "timeout", e
                else:
                    raise AssertionError("no CallTimeout")
                print(f"timeout_after={time.perf_counter() - t0:.2f}")
                # The stuck call still holds the only worker thread: health says so
                # (503 degraded), a new sync call is refused at once with 503 (it never
                # runs, so clients may retry it), async calls still answer.
                t0 = time.perf_counter()
                health = httpx.get(URL + "/healthz")
                assert health.status_code == 503, health.text
                assert health.json() == {"status": "degraded", "stuck_calls": 1}
                refused = httpx.post(
                    URL + "/v1/call/ping", headers={"Authorization": "Bearer " + TOKEN}
                )
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "unavailable"
                assert refused.headers["retry-after"] == "1"
                assert c.async_slow(0.01) == 0.01
                print(f"async_after={time.perf_counter() - t0:.2f}")
                # Once the stuck call returns, everything is back to normal.
                while httpx.get(URL + "/healthz").status_code != 200:
                    time.sleep(0.05)
                assert httpx.get(URL + "/healthz").json() == {"status": "ok"}
                assert c.ping() == "pong"
                print(f"sync_after={time.perf_counter() - t0:.2f}")
            """,
            URL=srv.url,
            TOKEN=TOKEN,
        )
        seen = {k: float(v) for k, v in values(out).items()}
        assert 0.9 <= seen["timeout_after"] < 3.0, out
        assert seen["async_after"] < 1.0, out
        assert seen["sync_after"] < 6.0, out
        assert srv.proc.poll() is None
    assert runs(traces, "slow") == ["stuck"]  # it did run to its end, after its 504
    assert len(runs(traces, "ping")) == 2


def test_server_killed_mid_call_fails_the_call_promptly(
    venv: Venv, client: str, traces: Path
) -> None:
    with serve(traces) as srv:
        proc = start_client(
            venv,
            """
            c = Client(URL, token=TOKEN, max_retries=1)
            t0 = time.perf_counter()
            try:
                c.slow(60.0)
            except ConnectionLost as e:
                # Sent, never answered: the call may have run, so it is not retried.
                assert isinstance(e, TransportError) and not isinstance(e, ConnectionFailed)
                print(f"lost_after={time.perf_counter() - t0:.2f}")
            else:
                raise AssertionError("no ConnectionLost")
            # The next call once the process is gone (while it dies, the kernel may still
            # accept a connection into the dying listener's backlog, then reset it).
            while not os.path.exists(os.environ["GONE"]):
                time.sleep(0.01)
            t0 = time.perf_counter()
            try:
                c.ping()
            except ConnectionFailed as e:
                # Nothing listens any more: the call certainly did not run.
                print(f"failed_after={time.perf_counter() - t0:.2f}")
            else:
                raise AssertionError("no ConnectionFailed")
            """,
            URL=srv.url,
            TOKEN=TOKEN,
            GONE=str(traces / "gone"),
        )
        wait_for(traces / "slow.started.ran")
        killed = time.monotonic()
        srv.proc.kill()
        srv.proc.wait(timeout=10)
        (traces / "gone").touch()
        out = finish(proc, timeout=20)
        took = time.monotonic() - killed
    seen = {k: float(v) for k, v in values(out).items()}
    assert took < 5.0, out
    # One retry after a 0.375-0.5 s backoff, then ConnectionFailed.
    assert seen["failed_after"] < 3.0, out
    assert runs(traces, "slow") == []  # killed before it finished
    assert runs(traces, "ping") == []


def test_call_retried_across_a_server_restart_succeeds_and_runs_once(
    venv: Venv, client: str, traces: Path
) -> None:
    port = free_port()
    attempts = traces / "attempts.log"
    with serve(traces, "--port", str(port)) as srv:
        url = srv.url
        assert url.endswith(f":{port}")
    # The server is down now. The client starts its call and keeps retrying.
    proc = start_client(
        venv,
        """
        log = open(os.environ["ATTEMPTS"], "a", buffering=1)
        http = httpx.Client(event_hooks={"request": [lambda r: log.write(r.url.path + "\\n")]})
        c = Client(URL, token=TOKEN, max_retries=8, http_client=http)
        print(f"result={c.record('after-restart')}")
        """,
        URL=url,
        TOKEN=TOKEN,
        ATTEMPTS=str(attempts),
    )
    deadline = time.monotonic() + 20
    while len(attempts.read_text().splitlines() if attempts.exists() else []) < 2:
        assert time.monotonic() < deadline, "the client never retried"
        assert proc.poll() is None, finish(proc, 1)
        time.sleep(0.02)
    with serve(traces, "--port", str(port)) as srv:
        out = finish(proc, timeout=40)
        assert srv.proc.poll() is None
    assert values(out) == {"result": "after-restart"}
    tried = attempts.read_text().splitlines()
    assert len(tried) >= 3, tried  # >= 2 refused connections, then the answered requests
    assert runs(traces, "record") == ["after-restart"]  # exactly once


def test_sigterm_finishes_in_flight_calls_before_exit(
    venv: Venv, client: str, traces: Path
) -> None:
    with serve(traces, "--max-concurrency", "1") as srv:
        # Two calls in flight: one running, one queued behind it (one worker).
        proc = start_client(
            venv,
            """
            results = {}
            def call(tag, seconds):
                with Client(URL, token=TOKEN, max_retries=0) as c:
                    results[tag] = c.slow(seconds, tag)
            threads = [
                threading.Thread(target=call, args=("first", 1.5)),
                threading.Thread(target=call, args=("second", 0.5)),
            ]
            for t in threads:
                t.start()
                time.sleep(0.2)
            for t in threads:
                t.join()
            print(f"first={results.get('first')}")
            print(f"second={results.get('second')}")
            """,
            URL=srv.url,
            TOKEN=TOKEN,
        )
        wait_for(traces / "slow.started.ran")
        time.sleep(0.4)  # both requests are in by now
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):  # no new connections while draining
            httpx.get(f"{srv.url}/healthz", timeout=2)
        out = finish(proc, timeout=30)
        returncode = srv.proc.wait(timeout=30)
        log = srv.log
    assert values(out) == {"first": "first", "second": "second"}
    assert runs(traces, "slow") == ["first", "second"]
    # uvicorn re-raises SIGTERM after its graceful shutdown (server issue S3).
    assert returncode in (0, -signal.SIGTERM), returncode
    assert "Application shutdown complete" in log


def test_wrong_token_is_unauthorized_and_nothing_runs(
    venv: Venv, client: str, traces: Path
) -> None:
    with serve(traces) as srv:
        out = run_client(
            venv,
            """
            for token in ("wrong", TOKEN + "x", TOKEN[:-1], TOKEN.upper(), None):
                with Client(URL, token=token, max_retries=0) as c:
                    try:
                        c.record(f"token={token}")
                    except Unauthorized as e:
                        assert e.status == 401 and e.code == "unauthorized", e
                        assert TOKEN not in str(e)
                        print(f"refused_{token}=1")
                    else:
                        raise AssertionError(f"{token!r} was accepted")
            with Client(URL, token=TOKEN) as c:
                print(f"accepted={c.record('right-token')}")
            """,
            URL=srv.url,
            TOKEN=TOKEN,
        )
        assert values(out)["accepted"] == "right-token"
        assert sum(k.startswith("refused_") for k in values(out)) == 5
        # Raw requests the client would never send: the token under another scheme or
        # in another place. (The scheme's case and the spaces after it do not matter,
        # RFC 7235; the token itself is compared exactly.)
        call = f"{srv.url}/v1/call/record"
        body = {"tag": "raw"}
        refused = [
            httpx.post(call, json=body, headers={"Authorization": f"Token {TOKEN}"}),
            httpx.post(call, json=body, headers={"Authorization": f"Bearer\t{TOKEN}"}),
            httpx.post(call, json=body, headers={"Authorization": f"Bearer {TOKEN}{TOKEN}"}),
            httpx.post(call, json=body, headers={"Authorization": f"Basic {TOKEN}"}),
            httpx.post(call, json=body, headers={"Authorization": TOKEN}),
            httpx.post(call, json=body, headers={"X-Token": TOKEN}),
            httpx.post(call, json=body, headers={"Cookie": f"token={TOKEN}"}),
            httpx.post(f"{call}?token={TOKEN}", json=body),
            httpx.post(call, json=body, headers={"Authorization": "Bearer"}),
        ]
        assert [r.status_code for r in refused] == [401] * len(refused)
        assert all(r.headers["www-authenticate"] == "Bearer" for r in refused)
    assert runs(traces, "record") == ["right-token"]  # nothing else ever ran
