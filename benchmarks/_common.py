"""Shared helpers of the benchmark scripts: machine facts, CPU pinning, servers, load.

Every script imports this module (``benchmarks/`` is ``sys.path[0]`` when a
script runs standalone) and reports through :class:`Report`, which prints a
table and, with ``--json PATH``, writes what ``run_all.py`` turns into
RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
APPS = BENCH_DIR / "_apps"
PY = sys.executable
INTERFACE = APPS / "bench_interface.py"


# --------------------------------------------------------------------- machine


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def uvicorn_impls() -> dict[str, str]:
    """What uvicorn's ``auto`` picks here (scopegen serve and every baseline use ``auto``)."""
    has = importlib.util.find_spec
    return {
        "http": "httptools" if has("httptools") else "h11",
        "loop": "uvloop" if has("uvloop") else "asyncio",
    }


def machine() -> dict[str, Any]:
    return {
        "cores": len(usable_cpus()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "uvicorn": uvicorn_impls(),
    }


# ------------------------------------------------------------------- pinning
#
# With two or more cores the server gets the last one and the load generator
# the others, so neither steals the other's CPU; with one core nothing is pinned.


def server_cpus() -> list[int]:
    cpus = usable_cpus()
    return cpus[-1:] if len(cpus) >= 2 else cpus


def client_cpus() -> list[int]:
    cpus = usable_cpus()
    return cpus[:-1] if len(cpus) >= 2 else cpus


def pinning() -> bool:
    """Pin only with 2+ cores; ``SCOPEGEN_BENCH_NO_PIN=1`` turns it off (to compare)."""
    return len(usable_cpus()) >= 2 and not os.environ.get("SCOPEGEN_BENCH_NO_PIN")


def taskset(cpus: Sequence[int]) -> list[str]:
    """A command prefix pinning a child process to ``cpus`` (empty when pinning is off)."""
    if not pinning() or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(map(str, cpus))]


def pin_self(cpus: Sequence[int]) -> None:
    if pinning() and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))


# ----------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def time_process(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of ``cmd`` (output discarded; a failure aborts)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


# -------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            # Any HTTP answer means uvicorn is up and the app loaded (factories run first).
            httpx.get(url + "/", timeout=1.0)
            return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not up after {timeout}s:\n{log_path.read_text()}")
        time.sleep(0.05)


@contextlib.contextmanager
def run_server(
    name: str, cmd: Sequence[str], port: int, *, timeout: float = 60.0, pin: bool = True
) -> Iterator[Server]:
    """Run ``cmd`` (listening on ``port``), pinned to the server CPU, until the block ends."""
    fd, log_name = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
    log_path = Path(log_name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SCOPEGEN_TOKEN", None)
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            [*(taskset(server_cpus()) if pin else []), *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path, timeout)
        yield Server(name, url, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_path.unlink(missing_ok=True)


def _python_m(pure_python: bool) -> list[str]:
    """``python -m``, or its stand-in that hides httptools and uvloop from uvicorn's ``auto``."""
    return [PY, str(APPS / "pure_python.py")] if pure_python else [PY, "-m"]


def scopegen_serve_cmd(path: Path, port: int, *extra: str, pure_python: bool = False) -> list[str]:
    return [
        *_python_m(pure_python),
        "scopegen",
        "serve",
        str(path),
        "--port",
        str(port),
        "--no-access-log",
        *extra,
    ]


def uvicorn_cmd(app: str, port: int, *, pure_python: bool = False) -> list[str]:
    """uvicorn as a user runs it, with the settings ``scopegen serve`` uses.

    ``scopegen serve`` passes ``access_log=False, ws="none", server_header=False,
    lifespan="on"`` and leaves ``http``/``loop`` on ``auto``; so do we.
    """
    return [
        *_python_m(pure_python),
        "uvicorn",
        app,
        "--app-dir",
        str(APPS),
        "--port",
        str(port),
        "--no-access-log",
        "--ws",
        "none",
        "--no-server-header",
        "--lifespan",
        "on",
        "--log-level",
        "warning",
    ]


# ----------------------------------------------------------------------- load


def find_wrk(install: bool = True) -> str | None:
    """``wrk`` on PATH, installing Debian's package when we are root and allowed to.

    ``SCOPEGEN_BENCH_LOADGEN=python`` forces the Python load generator.
    """
    if os.environ.get("SCOPEGEN_BENCH_LOADGEN") == "python":
        return None
    found = shutil.which("wrk")
    if found or not install or os.environ.get("SCOPEGEN_BENCH_NO_INSTALL"):
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("wrk not found: installing it with apt-get (set SCOPEGEN_BENCH_NO_INSTALL=1 to skip)")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
                subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return shutil.which("wrk")


_WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"errors\\":%%d,\\"non2xx\\":%%d," ..
    "\\"p50_us\\":%%d,\\"p99_us\\":%%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    tool: str
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


def loadgen_name(wrk: str | None) -> str:
    return "wrk (1 thread, Lua POST body)" if wrk else "python asyncio (benchmarks/_loadgen.py)"


def run_load(
    wrk: str | None, url: str, body: bytes, *, connections: int, duration: float
) -> LoadResult:
    """Keep-alive POST ``body`` to ``url`` from ``connections`` connections for ``duration`` s."""
    if wrk is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(_WRK_LUA % body.decode())
        try:
            cmd = [
                *taskset(client_cpus()),
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                url,
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        finally:
            os.unlink(f.name)
        line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
        d = json.loads(line[len("WRKJSON ") :])
        return LoadResult(
            "wrk",
            d["requests"] / (d["duration_us"] / 1e6),
            d["requests"],
            d["errors"] + d["non2xx"],
            d["p50_us"] / 1000,
            d["p99_us"] / 1000,
        )
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as bf:
        bf.write(body)
    try:
        cmd = [
            *taskset(client_cpus()),
            PY,
            str(BENCH_DIR / "_loadgen.py"),
            url,
            "--body-file",
            bf.name,
            "-c",
            str(connections),
            "-d",
            str(duration),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(bf.name)
    d = json.loads(out.strip().splitlines()[-1])
    return LoadResult("python", d["rps"], d["requests"], d["errors"], d["p50_ms"], d["p99_ms"])


# ------------------------------------------------------- raw asyncio HTTP/1.1


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection: a request out, the answer read by Content-Length.

    Each worker owns one, so the server sees exactly ``--connections`` connections,
    and the client costs little CPU (httpx's pool would add its own limits and cost).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> HTTPConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


# --------------------------------------------------------------------- report


@dataclass
class Comparison:
    """``a`` measured against ``b``: ratio = a / b (higher is better unless ``lower_is_better``).

    ``paired_ratio``, when given, is the median of per-round a/b ratios
    (rounds interleave the sides, so drift on a shared machine cancels) and is
    the ratio reported; ``a_value``/``b_value`` are then the medians shown beside it.
    """

    name: str
    a: str
    a_value: float
    b: str
    b_value: float
    unit: str
    target: str = ""
    lower_is_better: bool = False
    target_value: float | None = None
    paired_ratio: float | None = None

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.a_value / self.b_value if self.b_value else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target_value is None:
            return None
        if self.lower_is_better:
            return self.ratio <= self.target_value
        return self.ratio >= self.target_value


@dataclass
class Report:
    script: str
    title: str
    setup: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True

    def compare(self, c: Comparison) -> None:
        self.comparisons.append(c)
        verdict = {None: "", True: "  [target met]", False: "  [TARGET MISSED]"}[c.met]
        target = f"  target {c.target}" if c.target else ""
        print(
            f"{c.name}: {c.a} {fmt(c.a_value)} {c.unit} vs {c.b} {fmt(c.b_value)} {c.unit}"
            f" -> ratio {c.ratio:.2f}x{target}{verdict}",
            flush=True,
        )

    def figure(self, name: str, value: str, *, target: str = "", met: bool | None = None) -> None:
        """A measured figure; with ``target``/``met`` it is also a pass/fail check."""
        self.figures.append({"name": name, "value": value, "target": target, "met": met})
        verdict = {None: "", True: "  [target met]", False: "  [TARGET MISSED]"}[met]
        shown_target = f"  target {target}" if target else ""
        print(f"{name}: {value}{shown_target}{verdict}", flush=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "title": self.title,
            "setup": self.setup,
            "comparisons": [
                {**asdict(c), "ratio": c.ratio, "met": c.met} for c in self.comparisons
            ],
            "figures": self.figures,
            "ok": self.ok,
        }


def fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def arg_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", type=Path, help="also write the results as JSON here (run_all.py)")
    p.add_argument("--quick", action="store_true", help="fewer/shorter runs (smoke check)")
    return p


def finish(report: Report, json_path: Path | None) -> int:
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2))
    return 0 if report.ok else 1


# --------------------------------------------------------------------- client


def build_client(interface: Path, out: Path, name: str) -> Path:
    """``scopegen build INTERFACE -o OUT --name NAME``; returns ``OUT/NAME`` (the project)."""
    subprocess.run(
        [PY, "-m", "scopegen", "build", str(interface), "-o", str(out), "--name", name],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    return out / name


def install_into_fresh_venv(project: Path, venv: Path) -> Path | None:
    """``pip install PROJECT`` into a new venv (its deps only); its python, or None on failure."""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                str(project),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"could not install {project.name} into a fresh venv ({exc}); using sys.path")
        return None
    return python


def import_seconds(
    python: str | Path, module: str, *, runs: int, env: dict[str, str] | None = None
) -> list[float]:
    """Seconds ``import module`` takes in a fresh interpreter, ``runs`` times (after a warm-up)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out: list[float] = []
    for i in range(runs + 1):
        r = subprocess.run(
            [*taskset(client_cpus()), str(python), "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # not the repo: nothing shadows the installed package
        )
        if i:  # the first run writes .pyc files
            out.append(float(r.stdout.strip().splitlines()[-1]))
    return out
