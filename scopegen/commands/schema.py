"""``scopegen schema``: print the manifest of an interface file."""

from __future__ import annotations

import sys
from pathlib import Path

from scopegen.analyze import analyze_file
from scopegen.analyze.report import render_text, use_color
from scopegen.emit.schema import manifest_json

__all__ = ["run_schema"]


def run_schema(path: Path) -> int:
    try:
        analysis = analyze_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"scopegen schema: {path}: cannot read: {exc}", file=sys.stderr)
        return 2
    if analysis.errors:
        sources = {analysis.path: analysis.source}
        sys.stderr.write(render_text(analysis.errors, sources, color=use_color(sys.stderr)))
        return 1
    sys.stdout.write(manifest_json(analysis.interface).decode() + "\n")
    return 0
