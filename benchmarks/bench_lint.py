"""Lint a 2,000-function interface: ``scopegen lint FILE`` vs a bare libcst parse.

Both sides are whole processes (interpreter start-up, imports, reading the
file), run alternately, after one warm-up each; the median of N runs is
compared. Target: scopegen lint at most 3x the bare parse (aim 2x).

    .venv/bin/python benchmarks/bench_lint.py [--runs 9] [--functions 2000]
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


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--functions", type=int, default=2000)
    args = p.parse_args()
    runs = 3 if args.quick else args.runs

    report = Report("bench_lint.py", "Lint a large interface (whole process)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big_interface.py"
        path.write_text(generate(args.functions))
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

    report.setup = {
        "file": f"{args.functions} functions, {lines} lines (gen_big_interface.py)",
        "runs": runs,
        "lint": "python -m scopegen lint FILE",
        "baseline": "python -c 'import libcst; libcst.parse_module(...)'",
    }
    report.figure("file", report.setup["file"])
    report.figure("scopegen lint runs (s)", " ".join(f"{t:.3f}" for t in lint_t))
    report.figure("libcst parse runs (s)", " ".join(f"{t:.3f}" for t in parse_t))
    report.compare(
        Comparison(
            "lint time",
            "scopegen lint",
            median(lint_t) * 1000,
            "libcst parse",
            median(parse_t) * 1000,
            "ms",
            target="<= 3x (aim 2x)",
            lower_is_better=True,
            target_value=3.0,
        )
    )
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
