"""``scopegen lint`` and ``scopegen schema``: analysis results as reports.

Formats (DESIGN §3): text (ruff-like, with the source line), json, github
workflow commands, SARIF 2.1.0. Exit codes: 0 clean, 1 failing findings,
2 usage error or unreadable path.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from scopegen.analyze import Analysis, Diagnostic, analyze_file
from scopegen.analyze.rules import RULES

__all__ = [
    "discover",
    "format_github",
    "format_json",
    "format_sarif",
    "format_text",
    "run_lint",
    "run_schema",
]

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


def run_schema(path: Path) -> int:
    try:
        analysis = analyze_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"scopegen: {path}: cannot read: {exc}", file=sys.stderr)
        return 2
    if analysis.errors:
        sys.stderr.write(format_text(analysis.errors, {str(path): analysis.source}))
        return 1
    sys.stdout.write(analysis.interface.manifest_json().decode() + "\n")
    return 0


# --------------------------------------------------------------------------- formats


def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    return orjson.dumps([d.to_json() for d in diagnostics], option=orjson.OPT_INDENT_2).decode()


def _gh_escape(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def format_github(diagnostics: Iterable[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        kind = "error" if d.severity == "error" else "warning"
        props = (
            f"file={_gh_escape(d.path, prop=True)},line={d.line},col={d.column},"
            f"endLine={d.end_line},endColumn={d.end_column},title={d.code}"
        )
        lines.append(f"::{kind} {props}::{_gh_escape(f'{d.code} {d.message}')}")
    return "\n".join(lines)


def format_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    from scopegen import __version__

    rules = [
        {
            "id": r.CODE,
            "name": r.NAME,
            "shortDescription": {"text": (r.__doc__ or r.NAME).strip().split("\n")[0]},
            "fullDescription": {"text": " ".join((r.__doc__ or r.NAME).split())},
            "defaultConfiguration": {"level": "error" if r.SEVERITY == "error" else "warning"},
        }
        for r in RULES
    ]
    index = {r.CODE: i for i, r in enumerate(RULES)}
    results = [
        {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": "error" if d.severity == "error" else "warning",
            "message": {"text": d.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(d.path).as_posix()},
                        "region": {
                            "startLine": d.line,
                            "startColumn": d.column,
                            "endLine": d.end_line,
                            "endColumn": d.end_column,
                        },
                    }
                }
            ],
        }
        for d in diagnostics
    ]
    doc: dict[str, Any] = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "scopegen",
                        "version": __version__,
                        "informationUri": "https://github.com/scopegen/scopegen",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def format_text(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    """Plain text: ``path:line:col: CODE message`` plus the source line and a caret."""
    out: list[str] = []
    lines_cache: dict[str, list[str]] = {}
    for d in diagnostics:
        out.append(f"{d.path}:{d.line}:{d.column}: {d.code} {d.message}")
        src = sources.get(d.path)
        if src is None:
            continue
        lines = lines_cache.setdefault(d.path, src.splitlines())
        if 1 <= d.line <= len(lines):
            text = lines[d.line - 1]
            width = max(
                1, (d.end_column - d.column) if d.end_line == d.line else len(text) - d.column + 1
            )
            out.append(f"    {d.line:>4} | {text}")
            out.append(f"         | {' ' * (d.column - 1)}{'^' * width}")
    return "\n".join(out) + ("\n" if out else "")


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
