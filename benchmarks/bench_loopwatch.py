"""The event-loop watch's cost: ``scopegen serve`` with it (the default) vs without.

The watch (``scopegen/server/_loopwatch.py``) adds no work to a call: a
heartbeat timer on the loop a few times a second and a thread that checks it.
Two servers serve ``_apps/bench_interface.py``, one as it starts by default
(``--block-warning 0.5``) and one with ``--block-warning 0``; the load
generator hits them in alternating rounds and the ratio reported is the
median of per-round ratios (drift on a shared machine cancels). Target: the
watch costs nothing measurable, >= 0.97x the req/s of the server without it.

    .venv/bin/python benchmarks/bench_loopwatch.py [--rounds 5] [--duration 3]
"""

from __future__ import annotations

import contextlib

from _common import (
    INTERFACE,
    Comparison,
    Report,
    arg_parser,
    find_wrk,
    finish,
    free_port,
    loadgen_name,
    median,
    run_load,
    run_server,
    scopegen_serve_cmd,
)

TARGET = 0.97
BODY = b'{"x": 1}'


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    duration = 2.0 if args.quick else args.duration
    rounds = 1 if args.quick else args.rounds
    wrk = find_wrk()
    report = Report("bench_loopwatch.py", "Loop watch on vs off (req/s, trivial call)")
    report.setup = {
        "load generator": loadgen_name(wrk),
        "connections": args.connections,
        "rounds": rounds,
    }
    sides = {
        "watch on (default)": ("--block-warning", "0.5"),
        "watch off": ("--block-warning", "0"),
    }
    ports = {side: free_port() for side in sides}
    rps: dict[str, list[float]] = {side: [] for side in sides}
    with contextlib.ExitStack() as stack:
        servers = {
            side: stack.enter_context(
                run_server(side, scopegen_serve_cmd(INTERFACE, ports[side], *extra), ports[side])
            )
            for side, extra in sides.items()
        }
        for srv in servers.values():  # warm-up
            run_load(wrk, f"{srv.url}/v1/call/ping", BODY, connections=args.connections, duration=1)
        for _ in range(rounds):
            for side, srv in servers.items():
                r = run_load(
                    wrk,
                    f"{srv.url}/v1/call/ping",
                    BODY,
                    connections=args.connections,
                    duration=duration,
                )
                if r.errors:
                    raise SystemExit(f"{side}: {r.errors} errors")
                rps[side].append(r.rps)
    on, off = rps["watch on (default)"], rps["watch off"]
    report.compare(
        Comparison(
            "trivial call ping(x: int) -> int",
            "watch on",
            median(on),
            "watch off",
            median(off),
            "req/s",
            target=f">= {TARGET}x",
            target_value=TARGET,
            paired_ratio=median([a / b for a, b in zip(on, off, strict=True)]),
        )
    )
    return finish(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
