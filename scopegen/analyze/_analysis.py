"""Public entry points of the analyzer: parse once, gather facts once, run every rule."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from scopegen import spec
from scopegen.analyze._diagnostics import Diagnostic
from scopegen.analyze._facts import Facts, collect_facts
from scopegen.analyze.rules import RULES, Finding, function_ir_params, model_id_of
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
    """Analyze interface source text. Never raises on any input."""
    iname = name or default_interface_name(path)
    source_name = Path(path).name
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        diag = _syntax_error(source, path, exc)
        empty = Interface(iname, (), source_name=source_name)
        return Analysis(path, source, empty, (diag,))
    except Exception as exc:  # libcst's parser can fail on odd input in other ways
        diag = Diagnostic(path, 1, 1, 1, 1, "SG000", "error", f"cannot parse: {exc}")
        return Analysis(path, source, Interface(iname, (), source_name=source_name), (diag,))
    try:
        return _analyze_module(module, source, path, iname, source_name)
    except RecursionError:
        diag = Diagnostic(
            path, 1, 1, 1, 1, "SG000", "error", "the file is nested too deeply to analyze"
        )
    except Exception as exc:  # an analyzer bug must not become a traceback for the user
        diag = Diagnostic(
            path,
            1,
            1,
            1,
            1,
            "SG000",
            "error",
            f"internal analyzer error on {source_name}: {type(exc).__name__}: {exc}"
            " (please report it)",
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
    diagnostics = _diagnostics(module, source, path, findings)
    interface = _interface(facts, module, source, iname, source_name)
    return Analysis(
        path,
        source,
        interface,
        diagnostics,
        tuple(dict.fromkeys(facts.names.imported_modules)),
        module,
    )


def _interface(
    facts: Facts, module: cst.Module, source: str, iname: str, source_name: str
) -> Interface:
    lines = _def_lines(source)
    functions: list[spec.Function] = []
    seen: set[str] = set()
    for fn in facts.functions:
        if fn.name in seen:
            continue
        seen.add(fn.name)
        functions.append(
            spec.Function(
                name=fn.name,
                params=function_ir_params(fn, module),
                returns=fn.returns,
                doc=fn.node.get_docstring(clean=True) or None,
                is_async=fn.node.asynchronous is not None,
                location=spec.Location(lines.get(fn.name, 1), 0),
            )
        )
    model_ids: list[str] = []
    for call in facts.model_path_calls:
        mid = model_id_of(call)
        if mid is not None and mid not in model_ids:
            model_ids.append(mid)
    used = spec.referenced_types(
        [p.type for f in functions for p in f.params] + [f.returns for f in functions],
        facts.converter.typedefs,
    )
    types = tuple(facts.converter.typedefs[n] for n in used)
    return Interface(iname, tuple(functions), types, tuple(model_ids), source_name)


_DEF_RE = re.compile(r"^(?:async[ \t]+)?def[ \t]+(\w+)", re.M)


def _def_lines(source: str) -> dict[str, int]:
    # Line numbers of module-level defs for the IR, without a position pass over
    # the whole tree (that costs more than the parse on large files).
    out: dict[str, int] = {}
    line, pos = 1, 0
    for m in _DEF_RE.finditer(source):
        line += source.count("\n", pos, m.start())
        pos = m.start()
        out.setdefault(m.group(1), line)
    return out


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


def _syntax_error(source: str, path: str, exc: cst.ParserSyntaxError) -> Diagnostic:
    # CPython's own message and position are what users know; libcst's parser
    # disagrees on a few constructs, so fall back to its message then.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are noise here
            ast.parse(source, filename=path)
    except SyntaxError as err:
        line = err.lineno or 1
        col = err.offset or 1
        end_line = err.end_lineno or line
        end_col = err.end_offset or col
        return Diagnostic(
            path,
            line,
            col,
            end_line,
            max(end_col, col),
            "SG000",
            "error",
            f"syntax error: {err.msg}",
        )
    except (ValueError, RecursionError, MemoryError) as err:
        return Diagnostic(path, 1, 1, 1, 1, "SG000", "error", f"cannot parse: {err}")
    msg = str(exc).splitlines()[0] if str(exc) else "syntax error"
    return Diagnostic(
        path,
        exc.raw_line,
        exc.raw_column + 1,
        exc.raw_line,
        exc.raw_column + 1,
        "SG000",
        "error",
        msg,
    )


def analyze_file(path: str | Path, *, name: str | None = None) -> Analysis:
    source = Path(path).read_text(encoding="utf-8")
    return analyze_source(source, str(path), name=name)
