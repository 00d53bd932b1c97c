"""Noticing edits: a stat() poll of a few files in a daemon thread.

A handful of files costs microseconds per poll; a poll sees atomic-rename
saves, and works where inotify events do not arrive (network and container
mounts), with no dependency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["POLL_INTERVAL", "SETTLE", "Poller"]

POLL_INTERVAL = 0.1
# Editors save in steps (truncate, write, rename): wait until the files stop changing.
SETTLE = 0.03

_Stat = tuple[int, int, int] | None


class Poller:
    """Calls ``on_change`` after any of ``files()`` changed and then settled."""

    def __init__(
        self,
        files: Callable[[], list[Path]],
        on_change: Callable[[], None],
        *,
        interval: float = POLL_INTERVAL,
        settle: float = SETTLE,
    ) -> None:
        self.files = files
        self.on_change = on_change
        self.interval = interval
        self.settle = settle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> bool:
        """Start polling; False when already polling."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="scopegen-reload", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop polling; a change being handled is abandoned with the process."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _stat_all(self) -> dict[Path, _Stat]:
        return {p: _stat(p) for p in self.files()}

    def _poll(self) -> None:
        seen = self._stat_all()
        while not self._stop.wait(self.interval):
            now = self._stat_all()
            if now == seen:
                continue
            while not self._stop.wait(self.settle):
                again = self._stat_all()
                if again == now:
                    break
                now = again
            if self._stop.is_set():
                return
            self.on_change()
            # Files changed while handling it still differ from ``now``: next poll.
            seen = {p: now[p] if p in now else _stat(p) for p in self.files()}


def _stat(p: Path) -> _Stat:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
