"""Functions that fail on purpose, for the fault and security tests.

Every function leaves a trace in ``$SCOPEGEN_FAULT_DIR`` (``<name>.ran``,
one line per run), so a test can prove that a call ran, ran once, or never
ran at all. Names that must never be reachable (a private helper, a public
but unexposed function, an imported function, a class) leave their own
trace too: if any request ever reaches them, the file shows it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

from fault_helper import imported_helper  # noqa: F401  (must stay unreachable)

from scopegen import expose

TRACE_DIR = Path(os.environ.get("SCOPEGEN_FAULT_DIR", "."))
SECRET_GLOBAL = "module-global-value"
_lock = threading.Lock()


def _trace(name: str, line: str = "") -> None:
    with _lock, open(TRACE_DIR / f"{name}.ran", "a", encoding="utf-8") as f:
        f.write(line + "\n")


# Proof that the file was imported (``scopegen serve`` must refuse some starts before this).
_trace("module")


def _private_helper() -> str:
    _trace("_private_helper")
    return "private"


def not_exposed() -> str:
    _trace("not_exposed")
    return "not exposed"


class Widget:
    def __init__(self) -> None:
        _trace("Widget")


@expose
def ping() -> str:
    _trace("ping")
    return "pong"


@expose
def record(tag: str) -> str:
    """Write ``tag`` to ``record.ran``: proof that this call ran."""
    _trace("record", tag)
    return tag


@expose
def boom(message: str = "kaboom") -> str:
    _trace("boom")
    raise ValueError(message)


@expose
def exit_process(code: int = 3) -> str:
    """``sys.exit`` inside a call must not stop the server."""
    _trace("exit_process")
    sys.exit(code)


@expose
def interrupt() -> str:
    _trace("interrupt")
    raise KeyboardInterrupt


@expose
async def async_exit() -> str:
    _trace("async_exit")
    raise SystemExit(4)


@expose
async def async_interrupt() -> str:
    _trace("async_interrupt")
    raise KeyboardInterrupt


@expose
def slow(seconds: float, tag: str = "") -> str:
    """Sleep, tracing its start and its end (``slow.started`` / ``slow.ran``)."""
    _trace("slow.started", tag)
    time.sleep(seconds)
    _trace("slow", tag)
    return tag


@expose
async def async_slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    _trace("async_slow")
    return seconds


@expose
def fail_with(message: str) -> str:
    """Raise with the caller's text in the message (a function may leak its input)."""
    raise RuntimeError(message)


@expose
def crash(payload: str) -> str:
    """Raise without putting the argument in the message: logs must not show it either."""
    raise RuntimeError("crashed without echoing its input")
