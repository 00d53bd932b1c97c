"""Server throughput: scopegen vs FastAPI vs a minimal raw-ASGI floor, same uvicorn.

Three servers answer the same two functions (``_apps/``):

- scopegen: ``scopegen serve _apps/bench_interface.py --no-access-log``
- FastAPI:  ``uvicorn fastapi_app:app`` (sync ``def`` endpoints, Pydantic
  argument models, ``-> dict``: as a user would write it)
- floor:    ``uvicorn floor_app:app``, a raw ASGI + orjson dispatcher with no
  validation that runs sync functions the way scopegen does (one worker
  thread, ``loop.run_in_executor``)

All three run at once, pinned to one core, with uvicorn's settings as
``scopegen serve`` sets them (no access log, ``http``/``loop`` on ``auto``).
One load generator (wrk if present, else ``_loadgen.py``) pinned to the other
core(s) hits one server at a time; rounds interleave the servers and the
median req/s of the rounds is reported.

Targets: scopegen/FastAPI >= 3x (trivial call), >= 2.2x (4096 floats);
scopegen/floor >= 0.85x.

    .venv/bin/python benchmarks/bench_server.py [--connections 32] [--duration 3] [--rounds 5]
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable

import httpx
from _common import (
    INTERFACE,
    Comparison,
    LoadResult,
    Report,
    arg_parser,
    client_cpus,
    find_wrk,
    finish,
    fmt,
    free_port,
    loadgen_name,
    machine,
    median,
    run_load,
    run_server,
    scopegen_serve_cmd,
    server_cpus,
    uvicorn_cmd,
)

EMBEDDING = [math.sin(i) for i in range(4096)]
CALLS = {
    # endpoint: (body, expected result, label)
    "ping": (b'{"x": 1}', 1, "trivial call ping(x: int) -> int"),
    "embed": (
        b'{"text": "hello world"}',
        EMBEDDING,
        "4096-float result embed(text) -> list[float]",
    ),
}
TARGETS = {"ping": 3.0, "embed": 2.2}
FLOOR_TARGET = 0.85


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--pure-python",
        action="store_true",
        help="hide httptools and uvloop from every server (uvicorn then uses h11 + asyncio)",
    )
    p.add_argument(
        "--no-app-side",
        action="store_true",
        help="skip the diagnostic 'scopegen-app' side (create_app under the uvicorn CLI)",
    )
    args = p.parse_args()
    duration = 2.0 if args.quick else args.duration
    rounds = 1 if args.quick else args.rounds

    wrk = find_wrk()
    m = machine()
    pure = args.pure_python
    title = "Server throughput (req/s)" + (", pure Python (h11 + asyncio)" if pure else "")
    report = Report("bench_server.py" + (" --pure-python" if pure else ""), title)
    report.setup = {
        "load generator": loadgen_name(wrk),
        "connections": args.connections,
        "duration per run (s)": duration,
        "rounds (median)": rounds,
        "uvicorn http / loop": (
            "h11 / asyncio (--pure-python: httptools and uvloop hidden)"
            if args.pure_python
            else f"{m['uvicorn']['http']} / {m['uvicorn']['loop']} (auto)"
        ),
        "server CPU(s) / load CPU(s)": f"{server_cpus()} / {client_cpus()}",
    }
    for k, v in report.setup.items():
        print(f"{k}: {v}")

    cmds: dict[str, Callable[[int], list[str]]] = {
        "scopegen": lambda port: scopegen_serve_cmd(INTERFACE, port, pure_python=pure),
        "fastapi": lambda port: uvicorn_cmd("fastapi_app:app", port, pure_python=pure),
        "floor": lambda port: uvicorn_cmd("floor_app:app", port, pure_python=pure),
    }
    if not args.no_app_side:
        # Diagnostic: the same app under the plain uvicorn CLI (uvicorn binds the socket).
        cmds["scopegen-app"] = lambda port: [
            *uvicorn_cmd("scopegen_app:app", port, pure_python=pure),
            "--factory",
        ]
    ports = {side: free_port() for side in cmds}
    results: dict[tuple[str, str], list[LoadResult]] = {}
    with contextlib.ExitStack() as stack:
        servers = {
            side: stack.enter_context(run_server(side, cmd(ports[side]), ports[side]))
            for side, cmd in cmds.items()
        }
        # Every side must answer correctly before it is timed.
        for side, srv in servers.items():
            for fn, (body, expected, _) in CALLS.items():
                r = httpx.post(
                    f"{srv.url}/v1/call/{fn}",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                if r.status_code != 200 or r.json() != {"result": expected}:
                    raise SystemExit(
                        f"{side} answered {fn} wrongly: {r.status_code} {r.text[:200]}"
                    )
        for srv in servers.values():  # warm-up
            for fn, (body, _, _) in CALLS.items():
                run_load(
                    wrk, f"{srv.url}/v1/call/{fn}", body, connections=args.connections, duration=1
                )
        for rnd in range(rounds):
            for fn, (body, _, _) in CALLS.items():
                for side, srv in servers.items():
                    res = run_load(
                        wrk,
                        f"{srv.url}/v1/call/{fn}",
                        body,
                        connections=args.connections,
                        duration=duration,
                    )
                    results.setdefault((side, fn), []).append(res)
                    print(
                        f"  round {rnd + 1} {fn:5} {side:8} {fmt(res.rps):>7} req/s "
                        f"p50 {res.p50_ms:.2f} ms p99 {res.p99_ms:.2f} ms errors {res.errors}",
                        flush=True,
                    )

    rps = {key: median([r.rps for r in rs]) for key, rs in results.items()}

    def paired(fn: str, a: str, b: str) -> float:
        return median(
            [x.rps / y.rps for x, y in zip(results[(a, fn)], results[(b, fn)], strict=True)]
        )

    errors = sum(r.errors for rs in results.values() for r in rs)
    for fn, (_, _, label) in CALLS.items():
        report.figure(
            f"{label}",
            ", ".join(f"{side} {fmt(rps[(side, fn)])} req/s" for side in cmds),
        )
        report.compare(
            Comparison(
                f"{fn}: scopegen vs FastAPI",
                "scopegen",
                rps[("scopegen", fn)],
                "FastAPI",
                rps[("fastapi", fn)],
                "req/s",
                # The targets are for the shipped setup (httptools + uvloop).
                target="" if pure else f">= {TARGETS[fn]}x",
                target_value=None if pure else TARGETS[fn],
                paired_ratio=paired(fn, "scopegen", "fastapi"),
            )
        )
        report.compare(
            Comparison(
                f"{fn}: scopegen vs floor",
                "scopegen",
                rps[("scopegen", fn)],
                "floor",
                rps[("floor", fn)],
                "req/s",
                target="" if pure else f">= {FLOOR_TARGET}x",
                target_value=None if pure else FLOOR_TARGET,
                paired_ratio=paired(fn, "scopegen", "floor"),
            )
        )
        if "scopegen-app" in cmds:
            report.figure(
                f"{fn}: scopegen serve / same app under plain uvicorn (diagnostic)",
                f"{paired(fn, 'scopegen', 'scopegen-app'):.2f}x",
            )
    report.figure("errors / non-2xx during load", str(errors))
    report.ok = errors == 0
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
