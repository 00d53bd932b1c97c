"""``scopegen lint``: analysis results as reports.

Formats (README: "scopegen lint"): text (ruff-like, with the source line), json, github
workflow commands, SARIF 2.1.0. Exit codes: 0 clean, 1 failing findings,
2 usage error or unreadable path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from scopegen.analyze import Analysis, analyze_file
from scopegen.analyze.report import format_github, format_json, format_sarif

__all__ = ["discover", "run_lint"]

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


def run_lint(paths: Sequence[Path], output_format: str, *, strict: bool = False) -> int:
    files, problems = discover(paths)
    analyses: list[Analysis] = []
    for f in files:
        try:
            analyses.append(analyze_file(f))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{f}: cannot read: {exc}")
    for msg in problems:
        print(f"scopegen: {msg}", file=sys.stderr)
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
        _print_text(analyses, len(files))
    if problems:
        return 2
    failing = [d for d in diagnostics if d.severity == "error" or strict]
    return 1 if failing else 0


def _print_text(analyses: Sequence[Analysis], nfiles: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    errors = warnings = 0
    for a in analyses:
        lines = a.source.splitlines()
        for d in a.diagnostics:
            color = "red" if d.severity == "error" else "yellow"
            console.print(
                f"[bold]{escape(d.path)}:{d.line}:{d.column}:[/] "
                f"[bold {color}]{d.code}[/] {escape(d.message)}"
            )
            if 1 <= d.line <= len(lines):
                text = lines[d.line - 1]
                width = (
                    d.end_column - d.column if d.end_line == d.line else len(text) - d.column + 1
                )
                console.print(f"[dim]{d.line:>5} |[/] {escape(text)}")
                console.print(
                    f"[dim]      |[/] {' ' * (d.column - 1)}[{color}]{'^' * max(1, width)}[/]"
                )
            if d.severity == "error":
                errors += 1
            else:
                warnings += 1
    files = f"{nfiles} file{'s' if nfiles != 1 else ''}"
    if errors or warnings:
        console.print(
            f"Found {errors} error{'s' if errors != 1 else ''} and "
            f"{warnings} warning{'s' if warnings != 1 else ''} in {files}."
        )
    else:
        console.print(f"All checks passed ({files}).")
