"""``scopegen.testing.load`` vs the alternatives a test has: HTTP to a server, or a bare call.

An interface test either serves the file and talks HTTP to it (what
``scopegen.serve`` does), calls the function directly (the seed's hand-made
mocks: no validation, no encoding), or goes through ``scopegen.testing``
(the server's own ASGI app, in this process). Measured, on
``_apps/bench_interface.py``:

- sequential calls/s of ``ping(1)`` and the 4096-float ``embed``: in-process
  vs ``httpx.Client.post`` to ``scopegen serve`` (target >= 1x: a test must
  not get slower for going through the real code path), and what it costs
  per call over the bare Python call (the floor: validation, encoding, the
  hand-off to the app's event loop);
- time to a first answer: ``scopegen.testing.load`` + one call vs
  ``scopegen.serve`` + one call (start-up included; target <= 0.5x).

Rounds interleave the sides; ratios are medians of per-round ratios.

    .venv/bin/python benchmarks/bench_testing.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from _common import INTERFACE, Comparison, Report, arg_parser, finish, median

import scopegen
import scopegen.testing


def _rate(fn: Callable[[], Any], calls: int) -> float:
    fn()  # warm
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - t0)


def _bare(name: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("bench_interface_bare", INTERFACE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn: Callable[..., Any] = getattr(module, name)
    return fn


def main() -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls, rounds = (200, 2) if args.quick else (args.calls, args.rounds)
    report = Report(
        "bench_testing.py",
        "scopegen.testing in-process vs HTTP to scopegen serve vs a bare call",
        setup={"calls": calls, "rounds": rounds, "interface": INTERFACE.name},
    )
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "ping(1)": ("ping", {"x": 1}),
        "embed (4096 floats)": ("embed", {"text": "x"}),
    }
    with (
        scopegen.serve(INTERFACE, token=False, access_log=False) as server,
        scopegen.testing.load(INTERFACE) as iface,
        httpx.Client(base_url=server.url) as http,
    ):
        for label, (name, kwargs) in cases.items():
            bare = _bare(name)
            sides: dict[str, Callable[[], Any]] = {
                "in-process": lambda n=name, k=kwargs: iface.call(n, **k),
                "HTTP": lambda n=name, k=kwargs: http.post(f"/v1/call/{n}", json=k).json(),
                "bare call": lambda b=bare, k=kwargs: b(**k),
            }
            rates: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(rounds):
                for side, fn in sides.items():
                    rates[side].append(_rate(fn, calls))
            ratio_http = median(
                [a / b for a, b in zip(rates["in-process"], rates["HTTP"], strict=True)]
            )
            report.compare(
                Comparison(
                    f"{label}: sequential calls",
                    "in-process",
                    median(rates["in-process"]),
                    "HTTP (httpx -> scopegen serve)",
                    median(rates["HTTP"]),
                    "calls/s",
                    target=">= 1x",
                    target_value=1.0,
                    paired_ratio=ratio_http,
                )
            )
            # The floor: what validation, encoding and the loop hand-off add to a call.
            overhead = 1e6 / median(rates["in-process"]) - 1e6 / median(rates["bare call"])
            report.figure(f"{label}: in-process cost over a bare call", f"{overhead:.0f} µs/call")

    loads: list[float] = []
    serves: list[float] = []
    for _ in range(max(1, rounds // 2 + 1)):
        t0 = time.perf_counter()
        with scopegen.testing.load(INTERFACE) as iface:
            iface.ping(x=1)
        loads.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with scopegen.serve(INTERFACE, token=False) as server:
            httpx.post(f"{server.url}/v1/call/ping", json={"x": 1})
        serves.append(time.perf_counter() - t0)
    report.compare(
        Comparison(
            "load and first answer",
            "scopegen.testing.load",
            median(loads) * 1000,
            "scopegen.serve",
            median(serves) * 1000,
            "ms",
            target="<= 0.5x",
            lower_is_better=True,
            target_value=0.5,
            paired_ratio=median([a / b for a, b in zip(loads, serves, strict=True)]),
        )
    )
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
