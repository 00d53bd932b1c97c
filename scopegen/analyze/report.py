"""Lint reports: diagnostics as text, JSON, GitHub workflow commands or SARIF 2.1.0.

The formats of ``scopegen lint --format`` (see the README's lint section).
``render_text`` is the text form every command prints diagnostics in (lint,
schema, build); one line alone is ``str(diagnostic)``. Colour is plain ANSI,
so that the lint path imports no terminal library.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from scopegen.analyze._diagnostics import Diagnostic
from scopegen.analyze.rules import RULES

__all__ = [
    "format_github",
    "format_json",
    "format_sarif",
    "render_text",
    "summary",
    "use_color",
]

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_SEVERITY_COLOR = {"error": "\x1b[31m", "warning": "\x1b[33m"}


def use_color(stream: TextIO) -> bool:
    """Colour for a terminal, unless ``NO_COLOR`` is set; ``FORCE_COLOR`` forces it."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def render_text(
    diagnostics: Sequence[Diagnostic], sources: Mapping[str, str], *, color: bool = False
) -> str:
    """``path:line:col: CODE message`` per diagnostic, then its source line and a caret.

    The source line is shown when ``sources`` has the file's text.
    """

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    out: list[str] = []
    lines_cache: dict[str, list[str]] = {}
    for d in diagnostics:
        severity = _SEVERITY_COLOR.get(d.severity, "")
        where = paint(f"{d.path}:{d.line}:{d.column}:", _BOLD)
        out.append(f"{where} {paint(d.code, _BOLD + severity)} {d.message}")
        src = sources.get(d.path)
        if src is None:
            continue
        lines = lines_cache.setdefault(d.path, src.splitlines())
        if 1 <= d.line <= len(lines):
            text = lines[d.line - 1]
            width = d.end_column - d.column if d.end_line == d.line else len(text) - d.column + 1
            out.append(f"{paint(f'{d.line:>5} |', _DIM)} {text}")
            caret = paint("^" * max(1, width), severity)
            out.append(f"{paint('      |', _DIM)} {' ' * (d.column - 1)}{caret}")
    return "\n".join(out) + ("\n" if out else "")


def summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    """The last line of a text report: how many errors and warnings in how many files."""
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    in_files = f"{files} file{'s' if files != 1 else ''}"
    if not diagnostics:
        return f"All checks passed ({in_files})."
    return (
        f"Found {errors} error{'s' if errors != 1 else ''} and "
        f"{warnings} warning{'s' if warnings != 1 else ''} in {in_files}."
    )



def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    import orjson  # here, not at the top: the text report does not need it

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
    import orjson

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
