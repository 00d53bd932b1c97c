"""``scopegen serve --reload``: new code in a second, the model stays loaded.

The interface runs one top-level statement at a time (each compiled on its
own with the file's name and line numbers, so tracebacks point at the file),
through the same executor as a start-up load (``scopegen.server.execute``),
and the values that statements which load models bound right after they ran
are remembered. After an edit, ``_plan`` decides which of them are unchanged
(same code, same code of everything they depend on, same chain of later
mutations); those are put back instead of running, everything else runs
again in a fresh module namespace, and the app's endpoint table is swapped on
the event loop (calls in flight finish on the version they started on).

Watching is a stat() poll of the interface and the local helper modules it
imported (``_watch``, ``_helpers``). Lint errors, an exception while
executing, or a run-time/static mismatch keep the previous version serving
and say why.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import IO, TYPE_CHECKING, Any

from scopegen.analyze import Analysis, analyze_source, module_units
from scopegen.server import (
    InterfaceImportError,
    InterfaceLoadError,
    LoadedInterface,
    ServerSettings,
    checked_analysis,
    compile_units,
    execute,
    restore_module,
)
from scopegen.server.reload._helpers import HelperModules
from scopegen.server.reload._plan import Plan, Reuse, build_plan, plan_reuse
from scopegen.server.reload._watch import POLL_INTERVAL, Poller

if TYPE_CHECKING:
    from scopegen.server import ScopegenApp

__all__ = ["Reloader"]


@dataclass
class _Version:
    """One executed version of the interface and what a later one may reuse."""

    loaded: LoadedInterface
    # Signed with the helper-module digests as they were after it ran.
    plan: Plan
    # Value unit index -> the names it bound, as they were right after it ran.
    snapshots: dict[int, dict[str, Any]]

    @property
    def helpers(self) -> Mapping[str, int]:
        return self.plan.helpers


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
        self._stream = stream
        self._app: ScopegenApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: _Version | None = None
        self._helpers = HelperModules(self.path)
        # The statements' code, by text and line: an edit recompiles only what it touched.
        self._code: dict[tuple[str, int, int], CodeType] = {}
        self._poller = Poller(lambda: self.watched, self._on_change, interval=poll_interval)
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
        return [self.path, *self._helpers.files]

    def load(self, analysis: Analysis | None = None) -> LoadedInterface:
        """Lint, execute and reconcile the interface the first time.

        Raises ``InterfaceLintError``, ``InterfaceImportError`` or
        ``InterfaceMismatchError`` like ``load_interface``.
        """
        analysis = checked_analysis(
            analysis if analysis is not None else self.path,
            name=self.settings.name,
            model_paths=self.settings.model_paths(),
        )
        self._shown_path = analysis.path
        version, _ = self._execute(analysis, None, self._helpers.digests())
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
        if not self._poller.start():
            return
        version = self._version
        kept = version.plan.names(version.plan.heads) if version is not None else []
        helpers = len(self._helpers.files)
        self._say(
            f"watching {self.path.name}"
            + (f" and {helpers} helper module{'s' if helpers != 1 else ''}" if helpers else "")
            + " for edits"
            + (f"; kept across edits while unchanged: {', '.join(kept)}" if kept else "")
        )

    def stop(self) -> None:
        """Stop watching; a reload in progress is abandoned with the process."""
        self._poller.stop()

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
        helpers = self._helpers.digests()
        if source == old.loaded.analysis.source and helpers == old.helpers:
            # Saved without changes, or an edit undone after a failed reload.
            if self._failed:
                self._failed = False
                self._say(f"{name} is back to the version being served")
            return False
        self._failed = True  # Until this reload succeeds.
        analysis = analyze_source(source, self._shown_path, name=self.settings.name)
        for d in analysis.diagnostics:
            self._say(str(d), prefix=False)
        if analysis.errors:
            n = len(analysis.errors)
            self._say(
                f"not reloading {name}: {n} lint error{'s' if n != 1 else ''}; "
                "still serving the previous version"
            )
            return False
        self._helpers.forget_changed(old.helpers, helpers)
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
                restore_module(version.loaded.module, old.loaded.module)
                self._say(
                    f"reloading {name} failed: {type(exc).__name__}: {exc}; "
                    "still serving the previous version"
                )
                return False
            if not self._install(lambda: app.install(tables)):
                restore_module(version.loaded.module, old.loaded.module)
                return False
        self._version = version
        self._failed = False
        self._report(old, version, reuse, time.perf_counter() - t0)
        self._release(reuse)
        return True

    # ------------------------------------------------------------ executing

    def _execute(
        self, analysis: Analysis, old: _Version | None, helpers: Mapping[str, int]
    ) -> tuple[_Version, Reuse | None]:
        units = module_units(analysis)
        plan = build_plan(units, helpers)
        reuse = plan_reuse(old.plan, old.snapshots, plan) if old is not None else None
        kept: dict[int, Mapping[str, Any]] = {}
        if reuse is not None and old is not None:
            kept = {i: old.snapshots[o] for i, o in reuse.values.items()}
        code = compile_units(analysis, units, keep=kept, cache=self._code)
        before = set(sys.modules)
        try:
            run = execute(
                analysis, code, kept, snapshot=plan.snapshot_units, name=self.settings.name
            )
        finally:
            # Helpers imported before a failure are watched too: fixing them is the next edit.
            self._helpers.track(before)
        now = self._helpers.digests()
        if now != helpers:
            # It imported helpers not known before the run: sign the units that
            # import them as the next version will (the same units, new digests).
            plan = plan.signed(now)
        return _Version(run.loaded, plan, run.snapshots), reuse

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
            if self._poller.stopping or loop.is_closed():
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

    def _on_change(self) -> None:
        try:
            self.reload()
        except Exception:  # The watcher must outlive any bug in one reload.
            self._say("internal error while reloading:\n" + traceback.format_exc().rstrip())

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
            again = [
                f"{', '.join(plan.names([h]))} ({reuse.reasons[h]})" for h in reuse.rerun_heads
            ]
            line += f"; loaded again: {', '.join(again)}"
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
