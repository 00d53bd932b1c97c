"""Warn when something blocks the event loop: which function, for how long.

An exposed ``async def`` runs on the event loop. If it blocks (a forward
pass, ``time.sleep``, a file read) instead of awaiting, nothing else runs
meanwhile: no other call, no ``/healthz``, no timeout (``asyncio.timeout``
fires at the next await, so ``--call-timeout`` cannot stop it).

A blocked loop cannot time itself, so the watch has two halves: a heartbeat
timer on the loop writes the time of each beat, and a thread outside it
checks that the beats keep coming. When one is late past the threshold, the
thread reads the loop thread's stack (``sys._current_frames``) to name the
function that is running and its line, and warns while the loop is still
blocked; the next beat warns again with the whole blocked time. The call
path pays nothing: a few beats a second, and the stack is read only when the
loop is already late.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from time import monotonic
from types import FrameType
from typing import IO

__all__ = ["LoopWatch"]

ADVICE = "use def (it runs in a worker thread) or await asyncio.to_thread(...)"


class LoopWatch:
    """Warns on ``stream`` when the loop is blocked for more than ``threshold`` seconds.

    ``describe(frame)`` names what the loop thread is running, given its
    innermost frame (e.g. ``async function slow at interface.py:12``).
    """

    def __init__(
        self,
        threshold: float,
        describe: Callable[[FrameType | None], str],
        stream: IO[str] | None = None,
    ) -> None:
        self.threshold = threshold
        self.interval = min(max(threshold / 4, 0.02), 0.25)
        self._describe = describe
        self._stream = stream
        self._beat = 0.0
        self._culprit: str | None = None  # set while a blocked episode is reported
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start beating on ``loop`` (call it on the loop's thread) and watching it."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._beat = monotonic()
        self._handle = loop.call_later(self.interval, self._on_beat)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="scopegen-loopwatch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    # ------------------------------------------------------------ loop thread

    def _on_beat(self) -> None:
        with self._lock:
            now = monotonic()
            late = now - self._beat - self.interval
            self._beat = now
            culprit, self._culprit = self._culprit, None
        if culprit is not None:
            self._warn(f"the event loop was blocked for {late:.1f} s by {culprit}; {ADVICE}")
        if self._loop is not None and not self._stop.is_set():
            self._handle = self._loop.call_later(self.interval, self._on_beat)

    # ---------------------------------------------------------- watch thread

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if monotonic() - self._beat - self.interval <= self.threshold:
                continue  # the common case: no lock, no stack
            with self._lock:
                late = monotonic() - self._beat - self.interval
                if late <= self.threshold or self._culprit is not None:
                    continue  # reported once per episode; the next beat gives the total
                frame = sys._current_frames().get(self._loop_thread)
                self._culprit = culprit = self._describe(frame)
                del frame
            self._warn(
                f"the event loop is blocked ({late:.1f} s so far) by {culprit}: no other "
                f"request is served meanwhile, /healthz included; {ADVICE}"
            )

    def _warn(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(f"WARNING:  {message}\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # A closed stream must not break the server.
