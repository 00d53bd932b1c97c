"""Client overhead: the generated client vs bare httpx and http.client, one scopegen server.

``scopegen build _apps/bench_interface.py`` makes the client (imported from
``OUT/benchclient/src``) and ``scopegen serve`` serves the interface. Nothing
is pinned unless ``--pin``: a call waits for its answer, so client and server
never compete for a core, and on a VM a cross-core wake-up per call costs
more than the client layer being measured. Measured:

- sequential sync calls/s: generated ``Client.ping(1)`` vs ``httpx.Client.post``
  of the same pre-encoded body (target >= 0.9x) vs a raw ``http.client``
  keep-alive connection; the same for the 4096-float ``embed`` (the generated
  client parses and validates the list, the bare ones only read the bytes, and
  one more side parses with orjson, which isolates the cost of validation);
- async calls/s at 1, 16 and 64 concurrent calls: generated ``AsyncClient`` vs
  bare ``httpx.AsyncClient`` (both with httpx's default connection limits) and
  vs a raw asyncio floor (one keep-alive connection per concurrent caller);
- import time of the generated package in a fresh interpreter (median; target
  < 150 ms), installed with pip into a fresh venv holding only its
  dependencies (``--no-venv``: the repo's .venv plus ``PYTHONPATH``).

Rounds interleave the sides; ratios are medians of per-round ratios.

    .venv/bin/python benchmarks/bench_client.py [--calls 2000] [--rounds 5] [--no-venv]
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from _common import (
    INTERFACE,
    PY,
    Comparison,
    HTTPConnection,
    Report,
    arg_parser,
    build_client,
    client_cpus,
    finish,
    fmt,
    free_port,
    import_seconds,
    install_into_fresh_venv,
    median,
    pin_self,
    run_server,
    scopegen_serve_cmd,
    server_cpus,
)

PACKAGE = "benchclient"
EMBEDDING = [math.sin(i) for i in range(4096)]
PING_BODY = b'{"x":1}'
EMBED_BODY = b'{"text":"hello world"}'
HEADERS = {"content-type": "application/json", "accept": "application/json"}
IMPORT_TARGET_MS = 150.0
PARSED = "httpx.Client.post + orjson.loads"
CONCURRENCY = (1, 16, 64)


def _rate(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(calls/s, this process's CPU microseconds per call): the CPU figure barely
    moves when other processes load the machine, the wall-clock rate does."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - t0), (time.process_time() - c0) / calls * 1e6


async def _async_rate(call: Callable[[], Awaitable[Any]], concurrency: int, calls: int) -> float:
    per_worker = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - t0)


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--calls", type=int, default=2000, help="calls per side per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--import-runs", type=int, default=15)
    p.add_argument("--no-venv", action="store_true", help="measure the import in .venv")
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin server and client to separate cores (default: let the OS place them)",
    )
    args = p.parse_args()
    calls = 300 if args.quick else args.calls
    rounds = 2 if args.quick else args.rounds
    import_runs = 5 if args.quick else args.import_runs

    report = Report("bench_client.py", "Generated client overhead")
    report.setup = {
        "calls per side per round": calls,
        "rounds (median of per-round ratios)": rounds,
        "pinning": (
            f"server {server_cpus()}, client {client_cpus()}"
            if args.pin
            else "none (sequential calls never overlap; a cross-core wake-up per call "
            "would add latency to both sides and hide the client's own cost)"
        ),
        "server": "scopegen serve --no-access-log",
    }
    with tempfile.TemporaryDirectory() as tmp:
        project = build_client(INTERFACE, Path(tmp) / "out", PACKAGE)
        src = project / "src"
        sys.path.insert(0, str(src))
        pkg = importlib.import_module(PACKAGE)

        port = free_port()
        with run_server("scopegen", scopegen_serve_cmd(INTERFACE, port), port, pin=args.pin) as srv:
            if args.pin:
                pin_self(client_cpus())
            _sync_benchmarks(report, pkg, srv.url, calls, rounds)
            _async_benchmarks(report, pkg, srv.url, calls, rounds)

        _import_benchmark(report, project, src, Path(tmp), import_runs, use_venv=not args.no_venv)
    for k, v in report.setup.items():
        print(f"{k}: {v}")
    return finish(report, args.json)


def _sync_benchmarks(report: Report, pkg: Any, url: str, calls: int, rounds: int) -> None:
    parts = urlsplit(url)
    client = pkg.Client(base_url=url)
    bare = httpx.Client()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def raw(path: str, body: bytes) -> bytes:
        try:
            conn.request("POST", path, body, HEADERS)
            return conn.getresponse().read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the idle keep-alive connection while the other
            # sides ran (uvicorn's 5 s keep-alive): reopen it, as httpx's pool does.
            conn.close()
            conn.request("POST", path, body, HEADERS)
            return conn.getresponse().read()

    # Correct answers first.
    assert client.ping(1) == 1
    assert client.embed("hello world") == EMBEDDING
    assert bare.post(f"{url}/v1/call/ping", content=PING_BODY, headers=HEADERS).json() == {
        "result": 1
    }
    assert raw("/v1/call/ping", PING_BODY) == b'{"result":1}'

    for fn, body, gen_call in (
        ("ping", PING_BODY, lambda: client.ping(1)),
        ("embed", EMBED_BODY, lambda: client.embed("hello world")),
    ):
        n = calls if fn == "ping" else max(100, calls // 4)
        target = f"{url}/v1/call/{fn}"
        sides: dict[str, Callable[[], Any]] = {
            "generated Client": gen_call,
            "httpx.Client.post": lambda t=target, b=body: (
                bare.post(t, content=b, headers=HEADERS).content
            ),  # type: ignore[misc]
            "http.client": lambda f=fn, b=body: raw(f"/v1/call/{f}", b),  # type: ignore[misc]
        }
        if fn == "embed":
            # The bare sides only read bytes; this one also parses, as any real caller must,
            # so the gap to it is the generated client's validation of list[float].
            sides[PARSED] = lambda t=target, b=body: orjson.loads(  # type: ignore[misc]
                bare.post(t, content=b, headers=HEADERS).content
            )["result"]
        for side_fn in sides.values():  # warm-up
            _rate(side_fn, max(20, n // 10))
        per_round: dict[str, list[float]] = {side: [] for side in sides}
        cpu_us: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(rounds):
            for side, side_fn in sides.items():
                rate, cpu = _rate(side_fn, n)
                per_round[side].append(rate)
                cpu_us[side].append(cpu)
        _compare_rounds(
            report,
            f"sync {fn}",
            per_round,
            "generated Client",
            "httpx.Client.post",
            "calls/s",
            target=(0.9 if fn == "ping" else None),
        )
        _compare_rounds(
            report, f"sync {fn}", per_round, "generated Client", "http.client", "calls/s"
        )
        _compare_rounds(
            report,
            f"sync {fn} client CPU per call",
            cpu_us,
            "generated Client",
            "httpx.Client.post",
            "us",
            lower_is_better=True,
        )
        if PARSED in sides:
            _compare_rounds(report, f"sync {fn}", per_round, "generated Client", PARSED, "calls/s")
            _compare_rounds(
                report,
                f"sync {fn} client CPU per call",
                cpu_us,
                "generated Client",
                PARSED,
                "us",
                lower_is_better=True,
            )
    client.close()
    bare.close()
    conn.close()


def _async_benchmarks(report: Report, pkg: Any, url: str, calls: int, rounds: int) -> None:
    target = f"{url}/v1/call/ping"

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def measure(concurrency: int) -> dict[str, list[float]]:
        names = ("generated AsyncClient", "httpx.AsyncClient", "raw asyncio")
        per_round: dict[str, list[float]] = {name: [] for name in names}
        # The floor: one raw keep-alive connection per concurrent caller, handed out in turn.
        pool: asyncio.Queue[HTTPConnection] = asyncio.Queue()
        for _ in range(concurrency):
            pool.put_nowait(await HTTPConnection.open(host, port))
        async with pkg.AsyncClient(base_url=url) as gen, httpx.AsyncClient() as bare:
            assert await gen.ping(1) == 1

            async def bare_call() -> bytes:
                return (await bare.post(target, content=PING_BODY, headers=HEADERS)).content

            async def gen_call() -> int:
                result: int = await gen.ping(1)
                return result

            async def raw_call() -> bytes:
                conn = pool.get_nowait()
                try:
                    return (await conn.post("/v1/call/ping", PING_BODY))[1]
                except (asyncio.IncompleteReadError, ConnectionError):
                    # uvicorn closed it while idle (keep-alive timeout) during the other
                    # sides' rounds; httpx reconnects in that case too.
                    conn.close()
                    conn = await HTTPConnection.open(host, port)
                    return (await conn.post("/v1/call/ping", PING_BODY))[1]
                finally:
                    pool.put_nowait(conn)

            sides = dict(zip(names, (gen_call, bare_call, raw_call), strict=True))
            for call in sides.values():  # warm-up: open the connections
                await _async_rate(call, concurrency, max(concurrency * 2, calls // 10))
            for _ in range(rounds):
                for side, call in sides.items():
                    per_round[side].append(await _async_rate(call, concurrency, calls))
        while not pool.empty():
            pool.get_nowait().close()
        return per_round

    for concurrency in CONCURRENCY:
        per_round = asyncio.run(measure(concurrency))
        _compare_rounds(
            report,
            f"async ping x{concurrency}",
            per_round,
            "generated AsyncClient",
            "httpx.AsyncClient",
            "calls/s",
        )
        _compare_rounds(
            report,
            f"async ping x{concurrency}",
            per_round,
            "generated AsyncClient",
            "raw asyncio",
            "calls/s",
        )


def _compare_rounds(
    report: Report,
    name: str,
    per_round: dict[str, list[float]],
    a: str,
    b: str,
    unit: str,
    *,
    target: float | None = None,
    lower_is_better: bool = False,
) -> None:
    ratios = [x / y for x, y in zip(per_round[a], per_round[b], strict=True)]
    report.compare(
        Comparison(
            name,
            a,
            median(per_round[a]),
            b,
            median(per_round[b]),
            unit,
            target=f">= {target}x" if target is not None else "",
            target_value=target,
            paired_ratio=median(ratios),
            lower_is_better=lower_is_better,
        )
    )


def _import_benchmark(
    report: Report, project: Path, src: Path, tmp: Path, runs: int, *, use_venv: bool
) -> None:
    python = install_into_fresh_venv(project, tmp / "venv") if use_venv else None
    if python is not None:
        where = "fresh venv (pip install of the generated project: httpx, pydantic, orjson)"
        env = None
    else:
        where = ".venv + PYTHONPATH (note: httpx imports rich here, which typer installed)"
        env = {**os.environ, "PYTHONPATH": str(src)}
        python = Path(PY)
    report.setup["import measured in"] = where
    pkg_t = import_seconds(python, PACKAGE, runs=runs, env=env)
    httpx_t = import_seconds(python, "httpx, orjson", runs=runs, env=env)
    ms = median(pkg_t) * 1000
    report.figure(
        f"import {PACKAGE} (fresh interpreter, median of {runs})",
        f"{fmt(ms)} ms (import httpx, orjson alone: {fmt(median(httpx_t) * 1000)} ms)",
        target=f"< {IMPORT_TARGET_MS:.0f} ms",
        met=ms < IMPORT_TARGET_MS,
    )


if __name__ == "__main__":
    sys.exit(main())
