"""Lint reports: diagnostics as text, JSON, GitHub workflow commands or SARIF 2.1.0.

The formats of ``scopegen lint --format`` (see the README's lint section);
``render_text`` is the plain-text form every command uses for diagnostics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from scopegen.analyze._diagnostics import Diagnostic
from scopegen.analyze.rules import RULES

__all__ = ["format_github", "format_json", "format_sarif", "format_text"]



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
