"""``scopegen.serve``: a real ``scopegen serve`` process, from Python.

The process is the command line itself (``python -m scopegen serve PATH
--port 0 ...``), so it behaves exactly as a server started by hand: the
same lint, import, settings and protocol. It binds the port itself and
prints ``scopegen: serving NAME on http://HOST:PORT`` (``scopegen.commands.serve``),
which gives the real port; the server counts as started once ``/healthz``
answers 200. A process that exits first (a lint error, the interface
raising while it loads) is reported at once, with its output: the
interface's traceback.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from scopegen.protocol import HEALTH_PATH, TOKEN_ENV, env_prefix

if TYPE_CHECKING:
    from scopegen._api import Build

__all__ = ["Server", "ServerStartError", "serve"]

_LISTENING = re.compile(r"scopegen: serving (\S+) on (http://\S+)")
# How often start-up is checked: the process, its output, then /healthz.
_POLL = 0.02


class ServerStartError(RuntimeError):
    """``scopegen serve`` exited while starting, or did not become healthy in time.

    ``logs`` is everything it printed (a lint report, the interface's
    traceback); ``returncode`` is None when it was still running (and was stopped).
    """

    def __init__(self, message: str, logs: str, returncode: int | None) -> None:
        super().__init__(f"{message}\n{logs.rstrip()}" if logs.strip() else message)
        self.logs = logs
        self.returncode = returncode


class Server:
    """A running ``scopegen serve`` process; ``stop`` (or leaving ``with``) ends it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        folder: Path,
        *,
        url: str,
        name: str,
        token: str | None,
    ) -> None:
        self.process = process
        self.url = url
        self.name = name
        self.token = token
        self._folder = folder
        self._log_path = folder / "server.log"
        self._logs: str | None = None
        # A forgotten server still stops when this object goes, or at exit.
        self._finalizer = weakref.finalize(self, _stop, process, 10.0, folder)

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the server expects (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def log_path(self) -> Path:
        """The file the process writes its output to (removed by ``stop``)."""
        return self._log_path

    @property
    def logs(self) -> str:
        """Everything the process printed so far (start-up lines, the access log, errors)."""
        if self._logs is not None:
            return self._logs
        return _read(self._log_path)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` is in the output (log lines are written after responses)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs
            if text in logs:
                return logs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the server's output after {timeout}s:\n{logs}")
            time.sleep(_POLL)

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``); return its exit code."""
        if self._logs is None:
            self._finalizer.detach()
            try:
                _stop(self.process, timeout)
            finally:
                self._logs = _read(self._log_path)  # the shutdown lines included
                shutil.rmtree(self._folder, ignore_errors=True)
        code = self.process.poll()
        return code if code is not None else self.process.wait()

    def client_env(self, package: str | Build) -> dict[str, str]:
        """What a generated client reads to reach this server: ``<PREFIX>_URL`` and ``_TOKEN``."""
        name = package if isinstance(package, str) else package.package
        prefix = env_prefix(name)
        env = {f"{prefix}_URL": self.url}
        if self.token:
            env[f"{prefix}_TOKEN"] = self.token
        return env

    def mcp_config(self, name: str | None = None) -> dict[str, Any]:
        """``{"mcpServers": {NAME: ...}}`` for agent harnesses: ``scopegen mcp`` bridging to here.

        ``name`` defaults to the interface's. The bridge runs with this
        interpreter (which needs the ``mcp`` extra) and gets the token through
        its environment, never on its command line.
        """
        entry: dict[str, Any] = {
            "command": sys.executable,
            "args": ["-m", "scopegen", "mcp", self.url, "--token-env", TOKEN_ENV],
        }
        if self.token:
            entry["env"] = {TOKEN_ENV: self.token}
        return {"mcpServers": {name or self.name: entry}}

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._logs is not None else f"pid {self.process.pid}"
        return f"<scopegen.Server {self.name!r} on {self.url} ({state})>"


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | Literal[False] | None = None,
    models: Mapping[str, str | os.PathLike[str]] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    call_timeout: float | None = None,
    item_timeout: float | None = None,
    job_ttl: float | None = None,
    max_jobs: int | None = None,
    block_warning: float | None = None,
    max_concurrency: int | None = None,
    max_body: int | None = None,
    access_log: bool = True,
    hide_tracebacks: bool = False,
    reload: bool = False,
    insecure: bool = False,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 300.0,
) -> Server:
    """Start ``scopegen serve PATH`` and return once it answers ``/healthz``.

    The options are the command's (``args`` adds more). ``port=0`` picks a
    free port (``Server.url`` names it). ``token`` defaults to a fresh random
    one (``Server.token``); ``token=False`` serves without one. ``env`` is
    added to this process' environment for the server. Raises
    ``ServerStartError``, with the server's output, when it exits first or is
    not healthy within ``startup_timeout`` seconds.
    """
    if token is None:
        token = secrets.token_urlsafe(24)
    cmd = [sys.executable, "-m", "scopegen", "serve", os.fspath(path)]
    cmd += ["--host", host, "--port", str(port)]
    for option, value in (
        ("--call-timeout", call_timeout),
        ("--item-timeout", item_timeout),
        ("--job-ttl", job_ttl),
        ("--max-jobs", max_jobs),
        ("--block-warning", block_warning),
        ("--max-concurrency", max_concurrency),
        ("--max-body", max_body),
        ("--models-dir", models_dir),
    ):
        if value is not None:
            cmd += [option, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    for model_id, where in (models or {}).items():
        cmd += ["--model", f"{model_id}={os.fspath(where)}"]
    for flag, on in (
        ("--no-access-log", not access_log),
        ("--hide-tracebacks", hide_tracebacks),
        ("--reload", reload),
        ("--insecure", insecure),
    ):
        if on:
            cmd.append(flag)
    cmd += list(args)

    child_env = dict(os.environ)
    child_env.pop(TOKEN_ENV, None)
    if token:
        child_env[TOKEN_ENV] = token
    child_env["PYTHONUNBUFFERED"] = "1"  # log lines as they happen
    child_env.update(env or {})

    folder = Path(tempfile.mkdtemp(prefix="scopegen-serve-"))
    log_path = folder / "server.log"
    try:
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                cwd=cwd,
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        name, url = _wait_ready(process, log_path, startup_timeout, os.fspath(path))
    except BaseException:
        _stop(process, 10.0, folder)
        raise
    return Server(process, folder, url=url, name=name, token=token or None)


def _wait_ready(
    process: subprocess.Popen[bytes], log_path: Path, timeout: float, shown: str
) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    found: tuple[str, str] | None = None
    while True:
        logs = _read(log_path)
        if process.poll() is not None:
            raise ServerStartError(
                f"scopegen serve {shown} exited with {process.returncode} while starting:",
                _read(log_path),
                process.returncode,
            )
        if found is None and (m := _LISTENING.search(logs)):
            found = (m.group(1), m.group(2).rstrip("/"))
        if found is not None and _healthy(found[1]):
            return found
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"scopegen serve {shown} did not answer {HEALTH_PATH} within {timeout:g}s "
                "(stopped):",
                logs,
                None,
            )
        time.sleep(_POLL)


def _healthy(url: str) -> bool:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2.0)
    try:
        conn.request("GET", HEALTH_PATH)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _stop(process: subprocess.Popen[bytes], timeout: float, folder: Path | None = None) -> None:
    """Terminate, then kill after ``timeout``; remove ``folder`` (the log's) when given."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
