"""Lint an interface: ``scopegen lint FILE`` vs a bare libcst parse of the same file.

Two files: a typical interface (~600 lines), where the fixed cost of the
command line (interpreter, imports) dominates, and a 2,000-function one
(~10k lines), where the analysis does. Both sides are whole processes
(interpreter start-up, imports, reading the file), run alternately after one
warm-up each; the ratio reported is the median of per-round ratios. Targets:
at most 1.5x the bare parse on 600 lines (aim 1.2x), 3x on 2,000 functions
(aim 2x).

    .venv/bin/python benchmarks/bench_lint.py [--runs 15] [--functions 2000]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    PY,
    Comparison,
    Report,
    arg_parser,
    finish,
    median,
    time_process,
)
from gen_big_interface import generate

# 5 lines per function plus the header: ~600 lines, the size of a real interface.
TYPICAL_FUNCTIONS = 120


def _case(
    report: Report, label: str, functions: int, runs: int, folder: Path, target: tuple[str, float]
) -> None:
    path = folder / f"{label}_interface.py"
    path.write_text(generate(functions))
    lines = path.read_text().count("\n")
    lint_cmd = [PY, "-m", "scopegen", "lint", str(path)]
    parse_cmd = [PY, "-c", f"import libcst; libcst.parse_module(open({str(path)!r}).read())"]

    # The file must be lint-clean, or we would time an error report.
    check = subprocess.run(lint_cmd, capture_output=True, text=True)
    if check.returncode != 0:
        print(check.stdout, check.stderr, file=sys.stderr)
        raise SystemExit("scopegen lint failed on the generated file")

    time_process(lint_cmd)  # warm-ups: page cache, .pyc files
    time_process(parse_cmd)
    lint_t: list[float] = []
    parse_t: list[float] = []
    for _ in range(runs):
        lint_t.append(time_process(lint_cmd))
        parse_t.append(time_process(parse_cmd))

    report.figure(f"{label}: file", f"{functions} functions, {lines} lines")
    report.figure(f"{label}: scopegen lint runs (s)", " ".join(f"{t:.3f}" for t in lint_t))
    report.figure(f"{label}: libcst parse runs (s)", " ".join(f"{t:.3f}" for t in parse_t))
    report.compare(
        Comparison(
            f"lint time, {lines} lines",
            "scopegen lint",
            median(lint_t) * 1000,
            "libcst parse",
            median(parse_t) * 1000,
            "ms",
            target=target[0],
            lower_is_better=True,
            target_value=target[1],
            paired_ratio=median([a / b for a, b in zip(lint_t, parse_t, strict=True)]),
        )
    )


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--functions", type=int, default=2000)
    args = p.parse_args()
    runs = 3 if args.quick else args.runs

    report = Report("bench_lint.py", "Lint an interface (whole process)")
    report.setup = {
        "files": f"{TYPICAL_FUNCTIONS} and {args.functions} functions (gen_big_interface.py)",
        "runs": runs,
        "lint": "python -m scopegen lint FILE",
        "baseline": "python -c 'import libcst; libcst.parse_module(...)'",
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _case(report, "typical", TYPICAL_FUNCTIONS, runs, folder, ("<= 1.5x (aim 1.2x)", 1.5))
        _case(report, "large", args.functions, runs, folder, ("<= 3x (aim 2x)", 3.0))
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
