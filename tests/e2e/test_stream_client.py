"""The generated client's streams and jobs, installed in a fresh venv, against a real server."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._serving import RunningServer, running_server
from tests._venvs import Venv, install_client, shared_venv

ROOT = Path(__file__).resolve().parents[2]
IFACE = ROOT / "tests" / "interfaces" / "server_stream.py"
PACKAGE = "sg_stream"
TOKEN = "stream-client-token"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = shared_venv(tmp_path_factory)
    install_client(venv, IFACE, PACKAGE, tmp_path_factory)
    return venv


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(IFACE, token=TOKEN, args=["--max-concurrency", "2"]) as s:
        yield s


def run(venv: Venv, srv: RunningServer, code: str) -> str:
    env = {"SG_STREAM_URL": srv.url, "SG_STREAM_TOKEN": TOKEN}
    prelude = "import asyncio, time\nimport sg_stream\nfrom sg_stream import Client, AsyncClient\n"
    return venv.run_python(prelude + textwrap.dedent(code), env=env).stdout


def test_streams_are_typed_iterators(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        with Client() as c:
            assert list(c.count(3)) == [0, 1, 2]
            toks = list(c.tokens("a b"))
            assert [t.text for t in toks] == ["a", "b"], toks
            assert type(toks[0]).__name__ == "Token"
        assert list(sg_stream.count(2)) == [0, 1]  # the module-level function
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_items_arrive_as_produced_and_closing_stops_the_server(
    venv: Venv, srv: RunningServer
) -> None:
    run(
        venv,
        srv,
        """
        with Client() as c:
            t0 = time.monotonic()
            with c.count(1005, delay=0.2) as stream:
                assert next(stream) == 0 and time.monotonic() - t0 < 1.5
        """,
    )
    srv.wait_for_log("MARK count finally 1005", timeout=2.0)


def test_a_midstream_error_raises_after_the_items(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        got = []
        with Client() as c:
            try:
                for x in c.fail_after(2):
                    got.append(x)
            except sg_stream.FunctionError as e:
                print(got, e.remote_type, e.code, e.status)
        """,
    )
    assert out.strip() == "[0, 1] ValueError function_error 500"


def test_bad_arguments_raise_before_any_item(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        with Client() as c:
            try:
                c.count("3")  # type: ignore[arg-type]
            except sg_stream.InvalidArguments as e:
                print(e.status)
        """,
    )
    assert out.strip() == "422"


def test_async_streams(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        async def main() -> None:
            async with AsyncClient() as c:
                got = [x async for x in c.acount(3)]
                assert got == [0, 1, 2], got
                seen = []
                try:
                    async for x in c.afail_after(1):
                        seen.append(x)
                except sg_stream.FunctionError as e:
                    print(seen, e.remote_type)
        asyncio.run(main())
        """,
    )
    assert out.strip() == "['0'] RuntimeError"


def test_a_truncated_stream_is_connection_lost(venv: Venv, tmp_path: Path) -> None:
    # A server that sends two items and closes without the done line.
    server = tmp_path / "truncating.py"
    server.write_text(
        textwrap.dedent(
            """
            import socket, sys
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
            print(s.getsockname()[1], flush=True)
            for _ in range(2):
                conn, _ = s.accept()
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    data += conn.recv(65536)
                if b"GET" in data.split(b" ")[0]:
                    body = b'{"hash": "x"}'
                    conn.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
                                 b"content-length: %d\\r\\n\\r\\n%s" % (len(body), body))
                    data = b""
                    while b"\\r\\n\\r\\n" not in data:
                        data += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/x-ndjson\\r\\n"
                             b"transfer-encoding: chunked\\r\\n\\r\\n"
                             b"b\\r\\n{\\"item\\":0}\\n\\r\\n0\\r\\n\\r\\n")
                conn.close()
                break
            """
        )
    )
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, str(server)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        out = venv.run_python(
            textwrap.dedent(
                f"""
                import warnings, sg_stream
                warnings.simplefilter("ignore")
                got = []
                with sg_stream.Client("http://127.0.0.1:{port}") as c:
                    try:
                        for x in c.count(3):
                            got.append(x)
                    except sg_stream.ConnectionLost as e:
                        print(got, type(e).__name__)
                """
            )
        ).stdout
    finally:
        proc.kill()
        proc.wait()
    assert out.strip() == "[0] ConnectionLost"


def test_jobs_are_typed_and_survive_the_client(venv: Venv, srv: RunningServer) -> None:
    job_id = run(
        venv,
        srv,
        """
        with Client() as c:
            job = c.jobs.add(2, b=5)
            assert job.result(timeout=10) == 7
            stream_job = c.jobs.count(3)
            assert stream_job.result(timeout=10) == [0, 1, 2]
            assert stream_job.status() == "succeeded"
        slow = sg_stream.jobs.slow(0.5, tag="other-process")
        print(slow.id)
        """,
    ).strip()
    # Another process re-attaches by id and reads the result.
    out = run(
        venv,
        srv,
        f"""
        with Client() as c:
            job = c.jobs.attach({job_id!r})
            print(job.result(timeout=10), job.status())
        """,
    )
    assert out.strip() == "other-process succeeded"


def test_job_failures_and_cancels_raise_typed_errors(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        with Client() as c:
            failed = c.jobs.fail_after(1)
            try:
                failed.result(timeout=10)
            except sg_stream.FunctionError as e:
                print("failed", e.remote_type)
            job = c.jobs.slow(5.0)
            print(job.cancel())
            try:
                job.result(timeout=10)
            except sg_stream.JobCancelled:
                print("cancelled")
            try:
                c.jobs.attach("no-such-job")
            except sg_stream.UnknownJob as e:
                print(e.status)
            try:
                c.jobs.slow(1.0).result(timeout=0.2)
            except TimeoutError:
                print("timeout")
        """,
    )
    assert out.split("\n")[:5] == ["failed ValueError", "cancelled", "cancelled", "404", "timeout"]


def test_async_jobs(venv: Venv, srv: RunningServer) -> None:
    out = run(
        venv,
        srv,
        """
        async def main() -> None:
            async with AsyncClient() as c:
                job = await c.jobs.add(1)
                print(await job.result(timeout=10), await job.status())
                again = await c.jobs.attach(job.id)
                print(await again.result())
        asyncio.run(main())
        """,
    )
    assert out.split() == ["2", "succeeded", "2"]
