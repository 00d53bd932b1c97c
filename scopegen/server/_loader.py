"""Execute an interface file as a real module and collect what it exposes.

The file runs once, as a module with a real name and ``__file__`` (so
dataclasses, pydantic and pickling resolve it through ``sys.modules``), with
its folder on ``sys.path`` for helper modules and ``expose`` /
``get_model_path`` injected as globals. Its ``if __name__ == "__main__":``
block does not run. What got exposed at run time must match what the static
analyzer found: the validators, the manifest and the generated client are all
built from the analysis, so a difference refuses to start.
"""

from __future__ import annotations

import importlib.util
import inspect
import keyword
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from scopegen import runtime
from scopegen.analyze import Analysis, Diagnostic, analyze_file
from scopegen.spec import Function, Interface

__all__ = [
    "InterfaceImportError",
    "InterfaceLintError",
    "InterfaceLoadError",
    "InterfaceMismatchError",
    "LoadedInterface",
    "load_interface",
]

# ``expose`` writes into a module-level registry; loads swap it, so serialise them.
_load_lock = threading.Lock()


class InterfaceLoadError(Exception):
    """The interface could not be served (base class)."""


class InterfaceLintError(InterfaceLoadError):
    """The static analysis found errors; the file was not imported."""

    def __init__(self, path: str, errors: list[Diagnostic]) -> None:
        self.path = path
        self.errors = errors
        lines = [f"{d.path}:{d.line}:{d.column}: {d.code} {d.message}" for d in errors]
        super().__init__(f"{path} has {len(errors)} lint error(s):\n" + "\n".join(lines))


class InterfaceImportError(InterfaceLoadError):
    """Executing the interface file raised; ``traceback_text`` says where."""

    def __init__(self, path: str, exc: BaseException) -> None:
        self.path = path
        self.traceback_text = "".join(traceback.format_exception(exc))
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
    if isinstance(path_or_analysis, Analysis):
        analysis = path_or_analysis
    else:
        analysis = analyze_file(path_or_analysis, name=name)
    if analysis.errors:
        raise InterfaceLintError(analysis.path, analysis.errors)
    interface = analysis.interface
    if name is not None and name != interface.name:
        interface = replace(interface, name=name)
    if model_paths is not None:
        runtime.configure_model_paths(model_paths)
    path = Path(analysis.path).resolve()
    module, exposed = _execute(path)
    _reconcile(path, interface, exposed)
    # Keep the analysis' order (the manifest's order).
    functions = {fn.name: exposed[fn.name] for fn in interface.functions}
    # The parse tree is only needed while analysing (~1.5 kB a line): do not keep it.
    return LoadedInterface(path, module, functions, interface, replace(analysis, module=None))


def _module_name(path: Path) -> str:
    stem = path.stem
    if stem.isidentifier() and not keyword.iskeyword(stem):
        existing = sys.modules.get(stem)
        # Never shadow an unrelated module (``json.py``, a second ``interface``).
        if existing is None or getattr(existing, "__file__", None) == str(path):
            return stem
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"scopegen_interface_{safe}"


def _execute(path: Path) -> tuple[ModuleType, dict[str, Callable[..., Any]]]:
    mod_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise InterfaceLoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["expose"] = runtime.expose
    module.__dict__["get_model_path"] = runtime.get_model_path
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    registry: dict[str, Callable[..., Any]] = {}
    with _load_lock:
        saved = runtime._registry
        runtime._registry = registry
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(mod_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise InterfaceImportError(str(path), exc) from exc
        finally:
            runtime._registry = saved
    return module, registry


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
