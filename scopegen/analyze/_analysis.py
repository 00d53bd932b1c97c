"""Public entry points of the analyzer (stub being filled in)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scopegen.analyze._diagnostics import Diagnostic
from scopegen.spec import Interface


@dataclass(frozen=True)
class Analysis:
    """What one analysis of one file produced."""

    path: str
    source: str
    interface: Interface
    diagnostics: tuple[Diagnostic, ...]
    # Top-level imported module names (``transformers``, ``torch.nn``), in order.
    imported_modules: tuple[str, ...] = ()

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def default_interface_name(path: str | Path) -> str:
    """``examples/embeddings/interface.py`` -> ``embeddings``; ``foo_interface.py`` -> ``foo``."""
    p = Path(path)
    stem = p.stem
    if stem == "interface":
        stem = p.resolve().parent.name or "interface"
    elif stem.endswith("_interface"):
        stem = stem[: -len("_interface")]
    name = re.sub(r"\W+", "_", stem).strip("_").lower() or "interface"
    if name[0].isdigit():
        name = f"_{name}"
    return name


def analyze_source(source: str, path: str = "interface.py", *, name: str | None = None) -> Analysis:
    raise NotImplementedError


def analyze_file(path: str | Path, *, name: str | None = None) -> Analysis:
    source = Path(path).read_text(encoding="utf-8")
    return analyze_source(source, str(path), name=name)
