"""``scopegen schema``: print the manifest of an interface file."""

from __future__ import annotations

import sys
from pathlib import Path

from scopegen.analyze import analyze_file
from scopegen.analyze.report import format_text
from scopegen.emit.schema import manifest_json

__all__ = ["run_schema"]


def run_schema(path: Path) -> int:
    try:
        analysis = analyze_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"scopegen: {path}: cannot read: {exc}", file=sys.stderr)
        return 2
    if analysis.errors:
        sys.stderr.write(format_text(analysis.errors, {str(path): analysis.source}))
        return 1
    sys.stdout.write(manifest_json(analysis.interface).decode() + "\n")
    return 0
