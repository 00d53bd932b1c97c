"""Execute an interface file as a real module and collect what it exposes.

The file runs as a module with a real name and ``__file__`` (so dataclasses,
pydantic and pickling resolve it through ``sys.modules``), with its folder on
``sys.path`` for helper modules and ``expose`` / ``get_model_path`` injected
as globals. Its ``if __name__ == "__main__":`` block does not run. What got
exposed at run time must match what the static analyzer found: the
validators, the manifest and the generated client are all built from the
analysis, so a difference refuses to start.

One executor serves both callers: a start-up load runs the whole file as one
unit; ``serve --reload`` runs it one top-level statement at a time, putting
back the values of unchanged model loads instead of running them
(``scopegen.server.reload``).
"""

from __future__ import annotations
import __future__

import functools
import importlib.util
import inspect
import keyword
import operator
import sys
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from scopegen import runtime
from scopegen.analyze import Analysis, Diagnostic, Unit, analyze_file
from scopegen.spec import Function, Interface

__all__ = [
    "CodeUnit",
    "Execution",
    "InterfaceImportError",
    "InterfaceLintError",
    "InterfaceLoadError",
    "InterfaceMismatchError",
    "LoadedInterface",
    "checked_analysis",
    "compile_units",
    "execute",
    "load_interface",
    "restore_module",
]

# What ``from __future__ import ...`` can switch on: it holds for the rest of the file.
_FUTURE_FLAGS = functools.reduce(
    operator.or_, (getattr(__future__, f).compiler_flag for f in __future__.all_feature_names), 0
)


class InterfaceLoadError(Exception):
    """The interface could not be served (base class)."""


class InterfaceLintError(InterfaceLoadError):
    """The static analysis found errors; the file was not imported."""

    def __init__(self, path: str, errors: list[Diagnostic]) -> None:
        self.path = path
        self.errors = errors
        lines = [str(d) for d in errors]
        super().__init__(f"{path} has {len(errors)} lint error(s):\n" + "\n".join(lines))


class InterfaceImportError(InterfaceLoadError):
    """Executing the interface file raised ``error``; ``traceback_text`` says where.

    ``where`` is ``FILE:LINE`` of the last line of the interface file the
    traceback passes through (``None`` if it never does, e.g. a syntax error).
    """

    def __init__(self, path: str, exc: BaseException) -> None:
        self.path = path
        self.error = exc
        self.traceback_text = "".join(traceback.format_exception(exc))
        self.where: str | None = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == path:
                self.where = f"{path}:{frame.lineno}"
        super().__init__(f"importing {path} failed: {type(exc).__name__}: {exc}")


class InterfaceMismatchError(InterfaceLoadError):
    """What ran differs from what the static analysis found."""


@dataclass(frozen=True)
class LoadedInterface:
    """An executed interface file and the functions it exposed."""

    path: Path
    module: ModuleType
    # Exposed name -> the callable ``expose`` received.
    functions: Mapping[str, Callable[..., Any]]
    interface: Interface
    analysis: Analysis


@dataclass(frozen=True)
class CodeUnit:
    """A piece of an interface file, compiled on its own with the file's line numbers.

    ``code`` is None for a unit whose values are put back instead of running;
    ``binds`` are the module-level names it binds (put back, or recorded).
    """

    code: CodeType | None
    binds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Execution:
    """What ``execute`` produced."""

    loaded: LoadedInterface
    # Unit index -> its names' values right after it ran (only the units asked for).
    snapshots: dict[int, dict[str, Any]]


def load_interface(
    path_or_analysis: str | Path | Analysis,
    *,
    name: str | None = None,
    model_paths: runtime.ModelPaths | None = None,
) -> LoadedInterface:
    """Analyse (unless given an ``Analysis``), execute and reconcile an interface file.

    Raises ``InterfaceLintError`` before executing anything when the analysis
    has errors, ``InterfaceImportError`` when the file raises, and
    ``InterfaceMismatchError`` when run-time exposure differs from the analysis.
    ``model_paths`` configures ``get_model_path`` (process-wide) before the
    file runs.
    """
    analysis = checked_analysis(path_or_analysis, name=name, model_paths=model_paths)
    return execute(analysis, compile_units(analysis), name=name).loaded


def checked_analysis(
    path_or_analysis: str | Path | Analysis,
    *,
    name: str | None = None,
    model_paths: runtime.ModelPaths | None = None,
) -> Analysis:
    """The analysis of a file about to be executed.

    Analyses the file unless given an ``Analysis``, raises ``InterfaceLintError``
    when it has errors, and configures ``get_model_path`` (when ``model_paths``
    is given) for the run.
    """
    if isinstance(path_or_analysis, Analysis):
        analysis = path_or_analysis
    else:
        analysis = analyze_file(path_or_analysis, name=name)
    if analysis.errors:
        raise InterfaceLintError(analysis.path, analysis.errors)
    if model_paths is not None:
        runtime.configure_model_paths(model_paths)
    return analysis


def compile_units(
    analysis: Analysis,
    units: Sequence[Unit] | None = None,
    *,
    keep: Collection[int] = (),
    cache: dict[tuple[str, int, int], CodeType] | None = None,
) -> list[CodeUnit]:
    """Compile the analysed file as one unit, or ``units`` (its statements) one by one.

    Units whose index is in ``keep`` are not compiled (their values will be
    put back). Everything compiles before anything runs, so a statement that
    libcst accepts and CPython refuses (``return`` outside a function) runs
    nothing; it raises ``InterfaceImportError``. ``cache`` holds the code of
    the previous call (an edit changes few statements); on return it holds
    this call's.
    """
    filename = str(Path(analysis.path).resolve())
    if units is None:
        # A BOM belongs to the file's encoding, not to its code.
        pieces = [(analysis.source.removeprefix("\ufeff"), 1, frozenset[str]())]
    else:
        pieces = [(u.source, u.line, u.binds) for u in units]
    previous = dict(cache) if cache is not None else {}
    compiled: dict[tuple[str, int, int], CodeType] = {}
    out: list[CodeUnit] = []
    flags = 0
    try:
        for i, (source, line, binds) in enumerate(pieces):
            if i in keep:
                out.append(CodeUnit(None, binds))
                continue
            key = (source, line, flags)
            code = previous.get(key)
            if code is None:
                # Blank lines in front keep the file's line numbers in tracebacks and warnings.
                text = "\n" * (line - 1) + source
                code = compile(text, filename, "exec", flags=flags, dont_inherit=True)
            compiled[key] = code
            flags |= code.co_flags & _FUTURE_FLAGS  # as ``codeop`` carries them
            out.append(CodeUnit(code, binds))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise InterfaceImportError(filename, exc) from exc
    if cache is not None:
        cache.clear()
        cache.update(compiled)
    return out


def execute(
    analysis: Analysis,
    units: Sequence[CodeUnit],
    kept: Mapping[int, Mapping[str, Any]] | None = None,
    *,
    snapshot: Collection[int] = (),
    name: str | None = None,
) -> Execution:
    """Run ``units`` in a fresh module and reconcile what they exposed with ``analysis``.

    ``kept`` maps a unit index to values to put back instead of running it
    (names of its ``binds`` missing from them are unbound); ``snapshot`` names
    the units whose values to record right after they run. ``name``
    overrides the interface's name. The new module replaces the file's entry
    in ``sys.modules``; on failure the previous entry is back. Raises
    ``InterfaceImportError`` or ``InterfaceMismatchError``.
    """
    path = Path(analysis.path).resolve()
    interface = analysis.interface
    if name is not None and name != interface.name:
        interface = replace(interface, name=name)
    module, previous = _new_module(path)
    exposed, snapshots = _run(module, previous, units, kept or {}, snapshot)
    try:
        _reconcile(path, interface, exposed)
    except InterfaceLoadError:
        restore_module(module, previous)
        raise
    # Keep the analysis' order (the manifest's order).
    functions = {fn.name: exposed[fn.name] for fn in interface.functions}
    # The parse tree is only needed while analysing (~1.5 kB a line): do not keep it.
    loaded = LoadedInterface(path, module, functions, interface, replace(analysis, module=None))
    return Execution(loaded, snapshots)


def restore_module(rejected: ModuleType, served: ModuleType | None) -> None:
    """Point ``sys.modules`` back at ``served`` where ``rejected`` replaced it."""
    name = rejected.__name__
    if sys.modules.get(name) is rejected:
        if served is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = served


def _module_name(path: Path) -> str:
    stem = path.stem
    if stem.isidentifier() and not keyword.iskeyword(stem):
        existing = sys.modules.get(stem)
        # Never shadow an unrelated module (``json.py``, a second ``interface``).
        if existing is None or getattr(existing, "__file__", None) == str(path):
            return stem
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"scopegen_interface_{safe}"


def _new_module(path: Path) -> tuple[ModuleType, ModuleType | None]:
    """A fresh module for ``path`` and the module its name stood for until now."""
    mod_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None:
        raise InterfaceLoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["expose"] = runtime.expose
    module.__dict__["get_model_path"] = runtime.get_model_path
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return module, sys.modules.get(mod_name)


def _run(
    module: ModuleType,
    previous: ModuleType | None,
    units: Sequence[CodeUnit],
    kept: Mapping[int, Mapping[str, Any]],
    snapshot: Collection[int],
) -> tuple[dict[str, Callable[..., Any]], dict[int, dict[str, Any]]]:
    ns = module.__dict__
    snapshots: dict[int, dict[str, Any]] = {}
    with runtime.collect_exposed() as exposed:
        sys.modules[module.__name__] = module
        try:
            for i, unit in enumerate(units):
                values = kept.get(i)
                if values is not None:
                    for n in unit.binds:
                        if n in values:
                            ns[n] = values[n]
                        else:
                            ns.pop(n, None)
                else:
                    if unit.code is None:
                        raise ValueError(f"unit {i} is neither compiled nor kept")
                    doc = ns.get("__doc__")
                    exec(unit.code, ns)
                    if i and "__doc__" not in unit.binds:
                        # Compiled alone, a later lone string would become the docstring.
                        ns["__doc__"] = doc
                if i in snapshot:
                    snapshots[i] = {n: ns[n] for n in unit.binds if n in ns}
        except BaseException as exc:
            restore_module(module, previous)
            if isinstance(exc, KeyboardInterrupt):
                raise
            # Start the traceback in the file, not in this loop.
            tb = exc.__traceback__
            if tb is not None and tb.tb_frame.f_code is _run.__code__:
                exc = exc.with_traceback(tb.tb_next)
            raise InterfaceImportError(str(module.__file__), exc) from exc
    return exposed, snapshots


def _reconcile(path: Path, interface: Interface, exposed: Mapping[str, Callable[..., Any]]) -> None:
    static = [fn.name for fn in interface.functions]
    problems: list[str] = []
    missing = [n for n in static if n not in exposed]
    extra = sorted(n for n in exposed if n not in set(static))
    if missing:
        problems.append(
            "found by the analyzer but not exposed when the file ran: " + ", ".join(missing)
        )
    if extra:
        problems.append(
            "exposed when the file ran but not found by the analyzer (expose only "
            "module-level functions with a plain @expose decorator): " + ", ".join(extra)
        )
    for fn in interface.functions:
        if fn.name in exposed:
            problem = _signature_problem(fn, exposed[fn.name])
            if problem:
                problems.append(problem)
    if problems:
        raise InterfaceMismatchError(
            f"{path}: the running interface differs from its static analysis:\n  - "
            + "\n  - ".join(problems)
        )


def _signature_problem(fn: Function, obj: Callable[..., Any]) -> str | None:
    if not callable(obj):
        return f"{fn.name} is exposed but not callable"
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None  # Builtins and odd callables: nothing to compare.
    runtime = {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    declared = {p.name for p in fn.params if p.kind != "var_keyword"}
    if declared - runtime and not has_var_kw:
        return (
            f"{fn.name}: parameters {sorted(declared - runtime)} are in the source but "
            "not in the running function's signature (a decorator without functools.wraps?)"
        )
    required = {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
    }
    if required - declared:
        return (
            f"{fn.name}: the running function requires {sorted(required - declared)}, "
            "which the source does not declare"
        )
    return None
