"""``scopegen lint``: analysis results as reports.

Formats: text (ruff-like, with the source line), json, github workflow
commands, SARIF 2.1.0. Exit codes: 0 clean, 1 failing findings, 2 usage
error or unreadable path.

``main`` is the command line itself, on argparse: ``scopegen lint`` runs
before typer, rich or pydantic are imported (see ``scopegen/__main__.py``),
so a lint costs little more than the parse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scopegen.analyze import Analysis, analyze_file
from scopegen.analyze.report import (
    format_github,
    format_json,
    format_sarif,
    render_text,
    summary,
    use_color,
)

__all__ = ["FORMATS", "discover", "main", "run_lint"]

FORMATS = ("text", "json", "github", "sarif")

_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", ".tox"}


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Files to lint: files as given; folders walked for ``interface.py`` / ``*_interface.py``."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(
                f
                for pattern in ("interface.py", "*_interface.py")
                for f in p.rglob(pattern)
                if f.is_file() and not (_SKIP_DIRS & set(f.relative_to(p).parts[:-1]))
            )
            if not found:
                problems.append(f"{p}: no interface.py or *_interface.py found")
            files.extend(found)
        else:
            problems.append(f"{p}: no such file or directory")
    return list(dict.fromkeys(files)), problems


def main(argv: Sequence[str] | None = None) -> int:
    """``scopegen lint [--format F] [--strict] PATH...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scopegen lint",
        description="Check interface files statically (no import, no model load).",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="interface files or folders to walk"
    )
    parser.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="text",
        dest="output_format",
        help="report format (default: text)",
    )
    parser.add_argument(
        "--strict", action=argparse.BooleanOptionalAction, default=False, help="warnings fail too"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    return run_lint(args.paths, args.output_format, strict=args.strict)


def run_lint(paths: Sequence[Path], output_format: str, *, strict: bool = False) -> int:
    files, problems = discover(paths)
    analyses: list[Analysis] = []
    for f in files:
        try:
            analyses.append(analyze_file(f))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{f}: cannot read: {exc}")
    for msg in problems:
        print(f"scopegen lint: {msg}", file=sys.stderr)
    diagnostics = [d for a in analyses for d in a.diagnostics]
    out = sys.stdout
    if output_format == "json":
        out.write(format_json(diagnostics) + "\n")
    elif output_format == "github":
        text = format_github(diagnostics)
        if text:
            out.write(text + "\n")
    elif output_format == "sarif":
        out.write(format_sarif(diagnostics) + "\n")
    elif files:
        sources = {a.path: a.source for a in analyses}
        out.write(render_text(diagnostics, sources, color=use_color(out)))
        out.write(summary(diagnostics, len(files)) + "\n")
    if problems:
        return 2
    failing = [d for d in diagnostics if d.severity == "error" or strict]
    return 1 if failing else 0
