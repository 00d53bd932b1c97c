"""``scopegen serve --reload``: new code in a second, the model stays loaded.

The interface runs one top-level statement at a time (each compiled on its
own with the file's name and line numbers, so tracebacks point at the file),
and the values that statements which load models bound right after they ran
are remembered. After an edit, ``_plan`` decides which of them are unchanged
(same code, same code of everything they depend on, same chain of later
mutations); those are put back instead of running, everything else runs
again in a fresh module namespace, and the app's endpoint table is swapped on
the event loop (calls in flight finish on the version they started on).

Watching is a stat() poll of the interface and the local helper modules it
imported, every 100 ms, in a daemon thread: a handful of files costs
microseconds per poll, it sees atomic-rename saves, and it works where inotify
events do not arrive (network and container mounts), with no dependency.
Lint errors, an exception while executing, or a run-time/static mismatch
keep the previous version serving and say why.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import hashlib
import importlib
import importlib.util
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

from scopegen import runtime
from scopegen.analyze import Analysis, analyze_file, analyze_source
from scopegen.server._loader import (
    InterfaceImportError,
    InterfaceLintError,
    InterfaceLoadError,
    LoadedInterface,
    _load_lock,
    _module_name,
    _reconcile,
)
from scopegen.server._settings import ServerSettings
from scopegen.server.reload._plan import Plan, Reuse, build_plan, plan_reuse

if TYPE_CHECKING:
    from scopegen.server._app import ScopegenApp

__all__ = ["Reloader"]

POLL_INTERVAL = 0.1
# Editors save in steps (truncate, write, rename): wait until the files stop changing.
SETTLE = 0.03


@dataclass
class _Version:
    """One executed version of the interface and what a later one may reuse."""

    loaded: LoadedInterface
    plan: Plan
    # Value unit index -> the names it bound, as they were right after it ran.
    snapshots: dict[int, dict[str, Any]]
    helpers: dict[str, int]


class Reloader:
    """Executes an interface so that it can be re-executed cheaply, and watches it.

    ``load`` is the start-up import (it raises like ``load_interface``);
    ``reload`` re-lints and re-executes after an edit and installs the new
    version in the attached app (it never raises: it reports and keeps the
    previous version). ``start``/``stop`` run the watcher thread; the app calls
    them on lifespan start-up and shutdown.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        settings: ServerSettings,
        *,
        poll_interval: float = POLL_INTERVAL,
        stream: IO[str] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.settings = settings
        self.poll_interval = poll_interval
        self._stream = stream
        self._app: ScopegenApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: _Version | None = None
        # Local helper modules the interface imported: module name -> file.
        self._helpers: dict[str, Path] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The last reload did not install a new version (the file is not what is served).
        self._failed = False
        # The path as the user gave it: diagnostics name it the same way as at start-up.
        self._shown_path = str(path)

    # ------------------------------------------------------------ public

    @property
    def loaded(self) -> LoadedInterface | None:
        """The version being served (``None`` before ``load``)."""
        return self._version.loaded if self._version is not None else None

    @property
    def watched(self) -> list[Path]:
        """The files whose edits trigger a reload."""
        return [self.path, *sorted(set(self._helpers.values()))]

    def load(self, analysis: Analysis | None = None) -> LoadedInterface:
        """Lint, execute and reconcile the interface the first time.

        Raises ``InterfaceLintError``, ``InterfaceImportError`` or
        ``InterfaceMismatchError`` like ``load_interface``.
        """
        if analysis is None:
            analysis = analyze_file(self.path, name=self.settings.name)
        if analysis.errors:
            raise InterfaceLintError(analysis.path, analysis.errors)
        self._shown_path = analysis.path
        runtime.configure_model_paths(self.settings.model_paths())
        version, _ = self._execute(analysis, None)
        self._version = version
        return version.loaded

    def attach(self, app: ScopegenApp) -> None:
        """Install new versions into ``app``; the app starts and stops the watcher."""
        self._app = app
        app.on_startup.append(self.start)
        app.on_shutdown.append(self.stop)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start watching (idempotent); new versions are installed on ``loop``."""
        self._loop = loop
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="scopegen-reload", daemon=True)
        self._thread.start()
        version = self._version
        kept = version.plan.names(version.plan.heads) if version is not None else []
        helpers = len(set(self._helpers.values()))
        self._say(
            f"watching {self.path.name}"
            + (f" and {helpers} helper module{'s' if helpers != 1 else ''}" if helpers else "")
            + " for edits"
            + (f"; kept across edits while unchanged: {', '.join(kept)}" if kept else "")
        )

    def stop(self) -> None:
        """Stop watching; a reload in progress is abandoned with the process."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def reload(self) -> bool:
        """Re-lint and re-execute after an edit; True when a new version is served."""
        t0 = time.perf_counter()
        old = self._version
        if old is None:
            raise RuntimeError("Reloader.reload() before load()")
        name = self.path.name
        try:
            source = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._say(f"cannot read {self.path}: {exc}; still serving the previous version")
            return False
        helpers = self._helper_digests()
        if source == old.loaded.analysis.source and helpers == old.helpers:
            # Saved without changes, or an edit undone after a failed reload.
            if self._failed:
                self._failed = False
                self._say(f"{name} is back to the version being served")
            return False
        self._failed = True  # Until this reload succeeds.
        analysis = analyze_source(source, self._shown_path, name=self.settings.name)
        for d in analysis.diagnostics:
            self._say(f"{d.path}:{d.line}:{d.column}: {d.code} {d.message}", prefix=False)
        if analysis.errors:
            n = len(analysis.errors)
            self._say(
                f"not reloading {name}: {n} lint error{'s' if n != 1 else ''}; "
                "still serving the previous version"
            )
            return False
        self._forget_changed_helpers(old.helpers, helpers)
        try:
            version, reuse = self._execute(analysis, old, helpers)
        except InterfaceImportError as exc:
            self._say(exc.traceback_text.rstrip(), prefix=False)
            self._say(f"reloading {name} failed; still serving the previous version")
            return False
        except InterfaceLoadError as exc:
            self._say(f"{exc}\nreloading {name} failed; still serving the previous version")
            return False
        app = self._app
        if app is not None:
            try:
                tables = app.prepare(version.loaded)
            except Exception as exc:  # A validator that cannot be built: keep serving.
                _restore_module(version.loaded.module, old.loaded.module)
                self._say(
                    f"reloading {name} failed: {type(exc).__name__}: {exc}; "
                    "still serving the previous version"
                )
                return False
            if not self._install(lambda: app.install(tables)):
                _restore_module(version.loaded.module, old.loaded.module)
                return False
        self._version = version
        self._failed = False
        self._report(old, version, reuse, time.perf_counter() - t0)
        self._release(reuse)
        return True

    # ------------------------------------------------------------ executing

    def _execute(
        self,
        analysis: Analysis,
        old: _Version | None,
        helpers: dict[str, int] | None = None,
    ) -> tuple[_Version, Reuse | None]:
        path = self.path
        if helpers is None:
            helpers = self._helper_digests()
        try:
            plan = build_plan(analysis.module, analysis.source, str(path), helpers)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            # What libcst parsed but CPython does not (a grammar difference).
            raise InterfaceImportError(str(path), exc) from exc
        reuse = plan_reuse(old.plan, old.snapshots, plan) if old is not None else None
        values: dict[int, Mapping[str, Any]] = {}
        if reuse is not None and old is not None:
            values = {i: old.snapshots[o] for i, o in reuse.values.items()}
        before = set(sys.modules)
        module, exposed, snapshots = _run_units(path, plan, values, plan.snapshot_units)
        self._track_helpers(before)
        interface = analysis.interface
        if self.settings.name is not None and self.settings.name != interface.name:
            interface = replace(interface, name=self.settings.name)
        try:
            _reconcile(path, interface, exposed)
        except InterfaceLoadError:
            _restore_module(module, old.loaded.module if old is not None else None)
            raise
        functions = {fn.name: exposed[fn.name] for fn in interface.functions}
        loaded = LoadedInterface(path, module, functions, interface, analysis)
        now = self._helper_digests()
        if now != helpers:
            # It imported helpers not known before the run: sign the units that
            # import them as the next version will (the same units, new digests).
            helpers = now
            plan = build_plan(analysis.module, analysis.source, str(path), helpers)
        # The parse tree was only needed for the plan (~1.5 kB a line): do not keep it.
        loaded = replace(loaded, analysis=replace(analysis, module=None))
        return _Version(loaded, plan, snapshots, helpers), reuse

    def _install(self, apply: Callable[[], None]) -> bool:
        """Run ``apply`` on the event loop (between requests), or here without one."""
        loop = self._loop
        if loop is None or loop.is_closed():
            apply()
            return True
        done = threading.Event()

        def run() -> None:
            apply()
            done.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # The loop closed under us: the server is stopping.
            return False
        while not done.wait(0.1):
            if self._stop.is_set() or loop.is_closed():
                return False
        return True

    def _release(self, reuse: Reuse | None) -> None:
        """Free what a model reload replaced (only then: a full collection costs ~0.2 s)."""
        if reuse is None or not reuse.rerun_heads:
            return  # Only functions and cheap values changed: the collector's usual pace is fine.
        # ``scopegen serve`` froze the start-up objects: thaw them so a replaced
        # model can go, then freeze the survivors again. A version still running
        # a call now stays frozen until the next model reload frees it.
        frozen = gc.get_freeze_count() > 0
        gc.unfreeze()
        gc.collect()
        if frozen:
            gc.freeze()
        torch = sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None)
        try:
            if cuda is not None and cuda.is_initialized():
                cuda.empty_cache()
        except Exception:
            pass  # Best effort: the memory goes back to the driver later anyway.

    # ------------------------------------------------------------ helpers

    def _track_helpers(self, before: set[str]) -> None:
        for mod_name in set(sys.modules) - before:
            p = _source_file(sys.modules.get(mod_name))
            if p is None or p == self.path or not _is_local(p):
                continue
            top = mod_name.partition(".")[0]
            if top != mod_name:
                # A submodule of an installed package (torch.ops claims "_ops.py").
                parent = _source_file(sys.modules.get(top))
                if parent is None or not _is_local(parent):
                    continue
            self._helpers[mod_name] = p

    def _helper_digests(self) -> dict[str, int]:
        """Module name -> digest of its source and of the local modules it imports."""
        own: dict[str, bytes] = {}
        imports: dict[str, set[str]] = {}
        for mod_name, p in self._helpers.items():
            try:
                data = p.read_bytes()
            except OSError:
                data = b""  # Deleted: a change like any other.
            own[mod_name] = hashlib.blake2b(data, digest_size=16).digest()
            imports[mod_name] = _local_imports(mod_name, p, data, self._helpers)
        out: dict[str, int] = {}
        for mod_name in own:
            seen = {mod_name}
            todo = [mod_name]
            while todo:
                for dep in imports[todo.pop()]:
                    if dep not in seen:
                        seen.add(dep)
                        todo.append(dep)
            h = hashlib.blake2b(digest_size=16)
            for dep in sorted(seen):
                h.update(dep.encode() + b"=" + own[dep])
            out[mod_name] = int.from_bytes(h.digest(), "big")
        return out

    def _forget_changed_helpers(self, old: Mapping[str, int], new: Mapping[str, int]) -> None:
        """Drop edited helpers (and those importing them) so the next import reads them."""
        changed = [m for m, d in new.items() if old.get(m) != d]
        for mod_name in changed:
            sys.modules.pop(mod_name, None)
            p = self._helpers.get(mod_name)
            if p is not None:
                # A same-second, same-size edit would pass the .pyc check.
                with contextlib.suppress(OSError, ValueError, NotImplementedError):
                    os.remove(importlib.util.cache_from_source(str(p)))
        if changed:
            importlib.invalidate_caches()

    # ------------------------------------------------------------ watching

    def _stat_all(self) -> dict[Path, tuple[int, int, int] | None]:
        return {p: _stat(p) for p in self.watched}

    def _watch(self) -> None:
        seen = self._stat_all()
        while not self._stop.wait(self.poll_interval):
            now = self._stat_all()
            if now == seen:
                continue
            while not self._stop.wait(SETTLE):
                again = self._stat_all()
                if again == now:
                    break
                now = again
            if self._stop.is_set():
                return
            try:
                self.reload()
            except Exception:  # The watcher must outlive any bug in one reload.
                self._say("internal error while reloading:\n" + traceback.format_exc().rstrip())
            # Files changed during the reload still differ from ``now``: next poll.
            seen = {p: now[p] if p in now else _stat(p) for p in self.watched}

    # ------------------------------------------------------------ output

    def _report(self, old: _Version, new: _Version, reuse: Reuse | None, secs: float) -> None:
        plan = new.plan
        kept = plan.names(reuse.kept_heads) if reuse is not None else []
        ran = len(plan.units) - (len(reuse.values) if reuse is not None else 0)
        line = (
            f"reloaded {self.path.name} in {secs:.2f} s; "
            f"kept: {', '.join(kept) if kept else 'nothing'}; "
            f"re-ran: {ran} statement{'s' if ran != 1 else ''}"
        )
        if reuse is not None and reuse.rerun_heads:
            line += f"; loaded again: {', '.join(plan.names(reuse.rerun_heads))}"
        self._say(line)
        before = old.loaded.interface
        after = new.loaded.interface
        added = [f.name for f in after.functions if before.function(f.name) is None]
        removed = [f.name for f in before.functions if after.function(f.name) is None]
        if added or removed:
            parts = [f"+{n}" for n in added] + [f"-{n}" for n in removed]
            self._say(f"functions: {' '.join(parts)}")
        if before.hash != after.hash:
            self._say(
                f"interface hash {before.hash} -> {after.hash}: clients built from the "
                "previous version warn on their first call (rebuild them with scopegen build)"
            )

    def _say(self, text: str, *, prefix: bool = True) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write((f"scopegen: {text}" if prefix else text) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def _run_units(
    path: Path,
    plan: Plan,
    values: Mapping[int, Mapping[str, Any]],
    snapshot: frozenset[int],
) -> tuple[ModuleType, dict[str, Callable[..., Any]], dict[int, dict[str, Any]]]:
    """Execute the units of ``plan`` in a fresh module, taking ``values`` instead of running.

    Returns the module, what it exposed, and the values of the ``snapshot``
    units as they were right after each ran.
    """
    mod_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None:
        raise InterfaceLoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    ns = module.__dict__
    ns["expose"] = runtime.expose
    ns["get_model_path"] = runtime.get_model_path
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    filename = str(path)
    registry: dict[str, Callable[..., Any]] = {}
    snapshots: dict[int, dict[str, Any]] = {}
    with _load_lock:
        saved = runtime._registry
        runtime._registry = registry
        previous = sys.modules.get(mod_name)
        sys.modules[mod_name] = module
        try:
            for unit in plan.units:
                i = unit.index
                kept = values.get(i)
                if kept is None:
                    exec(plan.code(i, filename), ns)
                else:
                    for name in unit.binds:
                        if name in kept:
                            ns[name] = kept[name]
                        else:
                            ns.pop(name, None)
                if i in snapshot:
                    snapshots[i] = {n: ns[n] for n in unit.binds if n in ns}
            ns["__doc__"] = plan.doc  # A lone string statement must not replace it.
        except BaseException as exc:
            if previous is None:
                sys.modules.pop(mod_name, None)
            else:
                sys.modules[mod_name] = previous
            if isinstance(exc, KeyboardInterrupt):
                raise
            # Start the traceback in the file, not in this loop.
            tb = exc.__traceback__
            if tb is not None and tb.tb_frame.f_code is _run_units.__code__:
                exc = exc.with_traceback(tb.tb_next)
            raise InterfaceImportError(str(path), exc) from exc
        finally:
            runtime._registry = saved
    return module, registry, snapshots


def _restore_module(rejected: ModuleType, served: ModuleType | None) -> None:
    """Point ``sys.modules`` back at the version being served."""
    name = rejected.__name__
    if sys.modules.get(name) is rejected:
        if served is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = served


def _source_file(module: ModuleType | None) -> Path | None:
    """The existing ``.py`` file a module was loaded from, if any."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py") or not os.path.isabs(file):
        return None
    p = Path(file).resolve()
    return p if p.is_file() else None


def _stat(p: Path) -> tuple[int, int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


_SYSTEM_PREFIXES = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
)


def _is_local(p: Path) -> bool:
    """User code: not the standard library, not an installed package, not scopegen."""
    text = str(p)
    if text.startswith(_SYSTEM_PREFIXES):
        return False
    if "site-packages" in p.parts or "dist-packages" in p.parts:
        return False
    return not text.startswith(str(Path(runtime.__file__).resolve().parent) + os.sep)


def _local_imports(mod_name: str, path: Path, data: bytes, helpers: Mapping[str, Path]) -> set[str]:
    """The tracked helper modules that ``path``'s source imports."""
    try:
        tree = ast.parse(data, str(path))
    except (SyntaxError, ValueError):
        return set()
    package = mod_name if path.name == "__init__.py" else mod_name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                prefix = ".".join(parts[:k])
                if prefix in helpers and prefix != mod_name:
                    out.add(prefix)
    return out
