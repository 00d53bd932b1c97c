"""Run ``scopegen serve`` as a real subprocess on a free loopback port.

Shared by every test that needs a live server::

    from tests._serving import running_server   # or: from _serving import ...

    with running_server("tests/interfaces/server_basic.py", token="t0k") as srv:
        r = httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2}, headers=srv.headers)
        assert "add" in srv.log            # the access log so far

It is ``scopegen.serve`` (the Python API), so every test that serves also
exercises that: the server is started with ``--port 0``, binds the port
itself and prints ``scopegen: serving NAME on http://HOST:PORT``, which is
parsed, so two test processes can never race for the same port; it is
ready once ``/healthz`` answers 200. Unlike ``scopegen.serve``, no token is
the default here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

import scopegen
from scopegen import ServerStartError

__all__ = ["RunningServer", "ServerStartError", "running_server"]


class RunningServer:
    """A ``scopegen.Server`` with the names the tests use."""

    def __init__(self, server: scopegen.Server) -> None:
        self.server = server
        self.url: str = server.url
        self.token: str | None = server.token
        self.proc: subprocess.Popen[bytes] = server.process
        self.log_path: Path = server.log_path
        self.headers: dict[str, str] = server.headers

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.server.logs

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the output (log lines are written after responses)."""
        try:
            return self.server.wait_for_log(text, timeout)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client aimed at the server, with the bearer token when there is one."""
        return httpx.Client(base_url=self.url, headers=self.headers, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_server(
    path: str | os.PathLike[str],
    *,
    token: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[RunningServer]:
    """Run ``python -m scopegen serve PATH --port 0 ARGS`` until the block ends.

    ``token`` becomes ``SCOPEGEN_TOKEN`` in the server's environment (an
    inherited one is removed when ``token`` is None); ``env`` is added on top.
    """
    with scopegen.serve(
        path,
        token=token if token is not None else False,
        args=args,
        env=env,
        cwd=cwd,
        startup_timeout=startup_timeout,
    ) as server:
        yield RunningServer(server)
