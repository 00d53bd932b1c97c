"""Run every benchmark script and write benchmarks/RESULTS.md (``make bench``).

Every ``bench_*.py`` beside this file, then ``soak.py``, runs as its own
process (as it would standalone) with ``--json``; this collects the results
into one Markdown page: the machine, the date, the load generator, and every
comparison as a ratio with its target. A missed target is reported, not
fatal; a script that fails (soak errors included) makes the exit status 1.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only bench_server] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, PY, find_wrk, fmt, loadgen_name, machine

# Known scripts first, in this order; any other bench_*.py follows; soak.py runs last.
ORDER = ["bench_lint.py", "bench_server.py", "bench_client.py", "bench_tensors.py"]
# Extra runs of a script: the pure-Python server run shows what httptools + uvloop buy.
EXTRA_RUNS = {"bench_server.py": [["--pure-python", "--rounds", "3", "--no-app-side"]]}


def discover() -> list[tuple[str, list[str]]]:
    """Every benchmark script as (file name, extra arguments), in run order."""
    found = {p.name for p in BENCH_DIR.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(found - set(ORDER))
    if (BENCH_DIR / "soak.py").exists():
        names.append("soak.py")
    runs: list[tuple[str, list[str]]] = []
    for name in names:
        runs.append((name, []))
        runs += [(name, extra) for extra in EXTRA_RUNS.get(name, [])]
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="short runs (smoke check)")
    p.add_argument("--only", action="append", default=[], help="run only this script (repeatable)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = p.parse_args()
    scripts = [s for s in discover() if not args.only or any(o in s[0] for o in args.only)]

    wrk = find_wrk()  # installs it once, before any script needs it
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _loadavg()
    outcomes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (script, extra) in enumerate(scripts):
            json_path = Path(tmp) / f"{i}-{script}.json"
            cmd = [PY, str(BENCH_DIR / script), *extra, "--json", str(json_path)]
            if args.quick:
                cmd.append("--quick")
            script = " ".join([script, *extra])
            print(f"\n=== {script} ===", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, cwd=BENCH_DIR.parent).returncode
            took = time.perf_counter() - t0
            data = json.loads(json_path.read_text()) if json_path.exists() else None
            outcomes.append({"script": script, "rc": rc, "seconds": took, "data": data})

    page = render(outcomes, started, wrk, load_before, _loadavg(), quick=args.quick)
    args.out.write_text(page)
    print(f"\nwrote {args.out}")
    return 0 if all(o["rc"] == 0 for o in outcomes) else 1


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _met(met: bool | None) -> str:
    return {None: "", True: "yes", False: "**no**"}[met]


def render(
    outcomes: list[dict[str, Any]],
    started: dt.datetime,
    wrk: str | None,
    load_before: str,
    load_after: str,
    *,
    quick: bool,
) -> str:
    m = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`benchmarks/run_all.py{' --quick' if quick else ''}`) on "
        f"{started:%Y-%m-%d %H:%M} UTC. Ratios are scopegen's side over the other side; "
        "targets come from the project brief. Re-run to refresh; see README.md for what "
        "each script measures.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| cores | {m['cores']} |",
        f"| CPU | {m['cpu']} |",
        f"| Python | {m['implementation']} {m['python']} |",
        f"| platform | {m['platform']} |",
        f"| uvicorn http / loop | {m['uvicorn']['http']} / {m['uvicorn']['loop']} "
        "(uvicorn's `auto`, the same for every server) |",
        f"| load generator (bench_server) | {loadgen_name(wrk)} |",
        f"| load average 1/5/15 min, before / after | {load_before} — {load_after} |",
        "",
        "## Summary",
        "",
        "| benchmark | comparison | scopegen side | other side | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        d = o["data"]
        if d is None:
            lines.append(f"| {o['script']} | **failed (exit {o['rc']}), no results** | | | | | |")
            continue
        for c in d["comparisons"]:
            lines.append(
                f"| {d['script']} | {c['name']} | {c['a']} {fmt(c['a_value'])} {c['unit']} "
                f"| {c['b']} {fmt(c['b_value'])} {c['unit']} | {c['ratio']:.2f}x "
                f"| {c['target']} | {_met(c['met'])} |"
            )
        for f in d["figures"]:
            if f["target"]:
                lines.append(
                    f"| {d['script']} | {f['name']} | {f['value']} | | "
                    f"| {f['target']} | {_met(f['met'])} |"
                )
    for o in outcomes:
        d = o["data"]
        lines += ["", f"## {o['script']}" + (f": {d['title']}" if d else ""), ""]
        status = "ok" if o["rc"] == 0 else f"**exit {o['rc']}**"
        lines.append(f"Ran in {o['seconds']:.0f} s, {status}.")
        if d is None:
            continue
        lines.append("")
        for k, v in d["setup"].items():
            lines.append(f"- {k}: {v}")
        if d["comparisons"]:
            lines += ["", "| comparison | a | b | ratio | target |", "|---|---|---|---|---|"]
            for c in d["comparisons"]:
                lines.append(
                    f"| {c['name']} | {c['a']}: {fmt(c['a_value'])} {c['unit']} "
                    f"| {c['b']}: {fmt(c['b_value'])} {c['unit']} | {c['ratio']:.2f}x "
                    f"| {c['target']} {_met(c['met'])} |"
                )
        if d["figures"]:
            lines += ["", "| figure | value | target |", "|---|---|---|"]
            for f in d["figures"]:
                target = f"{f['target']} {_met(f['met'])}".strip()
                lines.append(f"| {f['name']} | {f['value']} | {target} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
