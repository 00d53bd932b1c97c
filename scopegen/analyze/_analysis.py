"""Public entry points of the analyzer: parse once, gather facts once, run every rule."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from scopegen.analyze._diagnostics import Diagnostic
from scopegen.analyze._facts import collect_facts
from scopegen.analyze._ir import build_interface
from scopegen.analyze.rules import PARSE_ERROR, RULES, Finding
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
    # The parsed module (None when the file did not parse); ``serve --reload`` reuses it.
    module: cst.Module | None = field(default=None, compare=False, repr=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

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
    """Analyze interface source text. Never raises on any input."""
    iname = name or default_interface_name(path)
    source_name = Path(path).name
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        diag = PARSE_ERROR.syntax_error(source, path, exc)
    except Exception as exc:  # libcst's parser can fail on odd input in other ways
        diag = PARSE_ERROR.at_start(path, PARSE_ERROR.CANNOT_PARSE.format(error=exc))
    else:
        try:
            return _analyze_module(module, source, path, iname, source_name)
        except RecursionError:
            diag = PARSE_ERROR.at_start(path, PARSE_ERROR.TOO_DEEP)
        except Exception as exc:  # an analyzer bug must not become a traceback for the user
            error = f"{type(exc).__name__}: {exc}"
            diag = PARSE_ERROR.at_start(
                path, PARSE_ERROR.INTERNAL.format(file=source_name, error=error)
            )
    return Analysis(path, source, Interface(iname, (), source_name=source_name), (diag,))


def _analyze_module(
    module: cst.Module, source: str, path: str, iname: str, source_name: str
) -> Analysis:
    facts = collect_facts(module)
    findings: list[tuple[Finding, str, str]] = []
    for rule in RULES:
        for f in rule.check(facts):
            findings.append((f, rule.CODE, rule.SEVERITY))
    return Analysis(
        path,
        source,
        build_interface(facts, iname, source_name),
        _diagnostics(module, source, path, findings),
        tuple(dict.fromkeys(facts.names.imported_modules)),
        module,
    )


def _diagnostics(
    module: cst.Module, source: str, path: str, findings: list[tuple[Finding, str, str]]
) -> tuple[Diagnostic, ...]:
    if not findings:
        return ()
    # Positions only when something is reported: the clean path stays parse-bound.
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    lines = source.splitlines()
    out: dict[tuple[str, int, int, str], Diagnostic] = {}
    for finding, code, severity in findings:
        node = finding.node
        if isinstance(node, cst.Module):
            rng = CodeRange((1, 0), (1, 0))
        else:
            rng = positions.get(node) or CodeRange((1, 0), (1, 0))
        line = rng.start.line
        if _suppressed(lines, line, code):
            continue
        key = (code, line, rng.start.column, finding.message)
        out.setdefault(
            key,
            Diagnostic(
                path,
                line,
                rng.start.column + 1,
                rng.end.line,
                rng.end.column + 1,
                code,
                severity,  # type: ignore[arg-type]
                finding.message,
            ),
        )
    return tuple(sorted(out.values(), key=lambda d: (d.line, d.column, d.code)))


_NOQA_RE = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*))?", re.I)


def _suppressed(lines: list[str], line: int, code: str) -> bool:
    if not 1 <= line <= len(lines):
        return False
    m = _NOQA_RE.search(lines[line - 1])
    if m is None:
        return False
    codes = m.group("codes")
    if codes is None:
        return True
    return code in {c.strip().upper() for c in codes.split(",")}


def analyze_file(path: str | Path, *, name: str | None = None) -> Analysis:
    source = Path(path).read_text(encoding="utf-8")
    return analyze_source(source, str(path), name=name)
