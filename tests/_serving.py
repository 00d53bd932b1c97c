"""Run ``scopegen serve`` as a real subprocess on a free loopback port.

Shared by every test that needs a live server::

    from tests._serving import running_server   # or: from _serving import ...

    with running_server("tests/interfaces/server_basic.py", token="t0k") as srv:
        r = httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2}, headers=srv.headers)
        assert "add" in srv.log            # the access log so far

The server is started with ``--port 0``: it binds the port itself and prints
``scopegen: serving NAME on http://HOST:PORT``, which is parsed here, so two
test processes can never race for the same port. The helper then waits for
``/healthz`` to answer 200 before yielding.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["RunningServer", "ServerStartError", "running_server"]

_LISTENING = re.compile(r"scopegen: serving \S+ on (http://\S+)")


class ServerStartError(RuntimeError):
    """The server exited, or did not become healthy in time; carries its output."""


@dataclass
class RunningServer:
    url: str
    token: str | None
    proc: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the output (log lines are written after responses)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in server output:\n{log}")
            time.sleep(0.02)

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
    child_env = dict(os.environ)
    child_env.pop("SCOPEGEN_TOKEN", None)
    if token is not None:
        child_env["SCOPEGEN_TOKEN"] = token
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)
    cmd = [sys.executable, "-m", "scopegen", "serve", str(path), "--port", "0", *args]
    with tempfile.TemporaryDirectory(prefix="scopegen-serve-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env, cwd=cwd
            )
        try:
            url = _wait_ready(proc, log_path, startup_timeout)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            yield RunningServer(url, token, proc, log_path, headers)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url: str | None = None
    while time.monotonic() < deadline:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if proc.poll() is not None:
            raise ServerStartError(f"server exited with {proc.returncode}:\n{text}")
        if url is None:
            m = _LISTENING.search(text)
            if m:
                url = m.group(1).rstrip("/")
        if url is not None:
            try:
                if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    _stop(proc)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    raise ServerStartError(f"server not healthy after {timeout:.0f}s:\n{text}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
