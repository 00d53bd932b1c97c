"""Running exposed functions: the worker pool, per-call timeouts and stuck workers.

Sync functions run on a dedicated thread pool whose size is the concurrency
limit (its queue is the wait: no semaphore); async functions run on the
event loop. With a per-call timeout, one periodic timer (``_Watchdog``)
watches the sync calls in flight, and async calls run under
``asyncio.timeout``. A sync call past its timeout cannot be stopped (threads
cannot be killed): its worker stays busy, ``_StuckWorkers`` counts it, and
when every worker is stuck new sync calls are refused (503 ``unavailable``)
instead of queueing forever, and the ``on_all_stuck`` hooks run (under Modal,
``scopegen.modal_runtime`` asks Modal to send the container no more inputs).

Every way a call can fail leaves here as a ``CallError`` (``timeout``,
``unavailable``, ``function_error``), so the app has one error to answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from time import monotonic
from types import CodeType, TracebackType
from typing import Any

from scopegen import protocol
from scopegen.server._errors import CallError

__all__ = ["Executor", "add_call_frames"]

_RETRY_SOON = ((protocol.RETRY_AFTER_HEADER.encode(), b"1"),)


# (seconds waiting for a worker, seconds running) of the call this task just ran:
# the app's Server-Timing header. A context variable, because the app awaits the
# runner in the same task (no change to the runner's signature).
CALL_TIMING: ContextVar[tuple[float, float]] = ContextVar("scopegen_call_timing")


class _TimedCall:
    """One sync call under a timeout, shared by the event loop and the worker thread.

    ``started`` is the monotonic time a worker picked it up (0.0 until then),
    ``expired`` is set when it got its 504, ``done`` when the worker returned,
    and ``stuck`` while it counts as a stuck worker (expired, not done).
    """

    __slots__ = ("done", "expired", "started", "stuck")

    def __init__(self) -> None:
        self.started = 0.0
        self.expired = False
        self.done = False
        self.stuck = False


class _StuckWorkers:
    """Worker threads still running a sync call that already got its 504.

    The server answers new sync calls 503 when every worker is stuck (the
    client retries those safely: the function never ran), and ``/healthz``
    says "degraded" so an orchestrator can restart the process. A lock
    guards only the expire/finish handshake of timed calls, never the plain
    call path.
    """

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def expired(self, call: _TimedCall) -> None:  # event loop thread
        with self.lock:
            if not call.done:
                call.stuck = True
                self.count += 1

    def finished(self, call: _TimedCall) -> None:  # worker thread
        with self.lock:
            call.done = True
            if call.stuck:
                call.stuck = False
                self.count -= 1


class _Watchdog:
    """Per-call timeouts of sync calls, counted from when a worker starts each call.

    One timer per tick scans the calls in flight, instead of a timer per call
    (a ``call_later`` + ``cancel`` per call costs as much as the rest of a
    trivial call). A worker writes the call's start time itself, so queueing
    never counts and no cross-thread wake-up is needed. A timeout fires
    within one tick (a twentieth of it, 5 ms to 250 ms) of its due time.
    """

    def __init__(self, timeout: float, on_expired: Callable[[], None]) -> None:
        self.timeout = timeout
        self.tick = min(max(timeout / 20, 0.005), 0.25)
        self.calls: dict[asyncio.Future[Any], _TimedCall] = {}
        self.stuck = _StuckWorkers()
        self._on_expired = on_expired
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], call: _TimedCall
    ) -> None:
        self.calls[future] = call
        # A loop may have closed under a pending tick (an app reused across loops).
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self.tick, self._scan)

    def _scan(self) -> None:
        due = monotonic() - self.timeout
        expired = False
        for future, call in list(self.calls.items()):
            if call.started and call.started <= due:
                call.expired = True
                del self.calls[future]
                future.cancel()
                self.stuck.expired(call)
                expired = True
        if expired:
            self._on_expired()
        if self.calls and self._loop is not None:
            self._handle = self._loop.call_later(self.tick, self._scan)
        else:
            self._handle = None


class Executor:
    """Runs the calls of one app: ``max_workers`` threads, ``timeout`` seconds each.

    ``hide_tracebacks`` leaves the remote traceback out of ``function_error``
    answers (the server's own log on stderr keeps it). ``on_all_stuck`` holds
    callables run on the event loop each time an expired call leaves every
    worker stuck; one that raises is reported on stderr and the others still run.
    """

    def __init__(self, max_workers: int, timeout: float | None, *, hide_tracebacks: bool) -> None:
        self.max_workers = max_workers
        self.timeout = timeout
        self._hide_tb = hide_tracebacks
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="scopegen-call"
        )
        self.on_all_stuck: list[Callable[[], None]] = []
        self._watchdog = _Watchdog(timeout, self._expired) if timeout else None

    def _expired(self) -> None:
        """A call ran past its timeout (event loop): run the hooks if no worker is left."""
        if not self.stuck_workers():
            return
        for hook in self.on_all_stuck:
            try:
                hook()
            except Exception:  # A broken hook must not stop the watchdog.
                sys.stderr.write(f"ERROR:    on_all_stuck hook {hook!r} raised\n")
                traceback.print_exc()

    def stuck_workers(self) -> int:
        """How many workers are stuck, when all of them are (else 0): the server is degraded."""
        watchdog = self._watchdog
        if watchdog is None:
            return 0
        n = watchdog.stuck.count
        return n if n >= self.max_workers else 0

    async def run_sync(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """``fn(**kwargs)`` on a worker thread."""
        loop = asyncio.get_running_loop()
        watchdog = self._watchdog
        submitted = monotonic()
        try:
            if watchdog is None:
                span = [submitted, submitted]
                result = await loop.run_in_executor(self._pool, _invoke, fn, kwargs, span)
                CALL_TIMING.set((span[0] - submitted, span[1] - span[0]))
                return result
            if watchdog.stuck.count >= self.max_workers:
                raise CallError(
                    "unavailable",
                    f"every worker ({self.max_workers}) is still running a call that ran past"
                    " its timeout; the call did not run",
                    _RETRY_SOON,
                )
            call = _TimedCall()
            future = loop.run_in_executor(
                self._pool, _invoke_timed, fn, kwargs, call, watchdog.stuck
            )
            watchdog.watch(loop, future, call)
            try:
                result = await future
                CALL_TIMING.set((call.started - submitted, monotonic() - call.started))
                return result
            except asyncio.CancelledError:
                if call.expired:
                    raise self._timed_out(name) from None
                raise
            finally:
                watchdog.calls.pop(future, None)
        except (CallError, asyncio.CancelledError):
            raise
        except BaseException as exc:  # A function may raise anything; the server survives.
            raise self._raised(name, exc) from None

    async def run_async(
        self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]], kwargs: dict[str, Any]
    ) -> Any:
        """``await fn(**kwargs)`` on the event loop (no queue: it starts at once)."""
        started = monotonic()
        try:
            if self.timeout is None:
                result = await fn(**kwargs)
                CALL_TIMING.set((0.0, monotonic() - started))
                return result
            # asyncio.timeout (3.11+) only cancels this task; wait_for is the 3.10 fallback.
            if sys.version_info >= (3, 11):
                cm = asyncio.timeout(self.timeout)
                try:
                    async with cm:
                        result = await fn(**kwargs)
                    CALL_TIMING.set((0.0, monotonic() - started))
                    return result
                except TimeoutError:
                    if cm.expired():
                        raise self._timed_out(name) from None
                    raise
            try:
                result = await asyncio.wait_for(fn(**kwargs), self.timeout)
                CALL_TIMING.set((0.0, monotonic() - started))
                return result
            except asyncio.TimeoutError:
                raise self._timed_out(name) from None
        except (CallError, asyncio.CancelledError):
            raise
        except BaseException as exc:  # A function may raise anything; the server survives.
            raise self._raised(name, exc) from None

    def close(self) -> None:
        """Release the pool: running calls finish, queued ones are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on a worker (a streaming call's producer): the same pool and limit.

        Refused (503 ``unavailable``) like a sync call while every worker is stuck.
        """
        watchdog = self._watchdog
        if watchdog is not None and watchdog.stuck.count >= self.max_workers:
            raise CallError(
                "unavailable",
                f"every worker ({self.max_workers}) is still running a call that ran past"
                " its timeout; the call did not run",
                _RETRY_SOON,
            )
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def track(self) -> _TimedCall | None:
        """A handle for a streaming call's worker, counted as stuck once it timed out."""
        return _TimedCall() if self._watchdog is not None else None

    def timed_out(self, call: _TimedCall | None) -> None:
        """The stream got its timeout line (event loop): its worker is stuck until it stops."""
        if call is not None and self._watchdog is not None:
            self._watchdog.stuck.expired(call)
            self._expired()

    def finished(self, call: _TimedCall | None) -> None:
        """The stream's worker is free again (worker thread)."""
        if call is not None and self._watchdog is not None:
            self._watchdog.stuck.finished(call)

    def raised(self, name: str, exc: BaseException) -> CallError:
        """The ``function_error`` for ``exc``, raised by exposed function ``name``."""
        return self._raised(name, exc)

    def _timed_out(self, name: str) -> CallError:
        assert self.timeout is not None
        return CallError("timeout", f"{name} ran past the per-call timeout of {self.timeout:g} s")

    def _raised(self, name: str, exc: BaseException) -> CallError:
        """``function_error``: the exception's type, message and the user's own frames."""
        t = type(exc)
        type_name = t.__qualname__
        if t.__module__ != "builtins":
            type_name = f"{t.__module__}.{type_name}"
        extra: dict[str, Any] = {"type": type_name}
        tb = "".join(traceback.format_exception(t, exc, _user_frames(exc.__traceback__)))
        if not self._hide_tb:
            extra["traceback"] = tb
        # The server's own log keeps the traceback even when responses hide it.
        sys.stderr.write(f"ERROR:    {name} raised {type_name}\n{tb}")
        try:
            message = str(exc)
        except Exception:  # A broken __str__ must not break the answer.
            message = f"<unprintable {type_name}>"
        return CallError("function_error", message or type_name, **extra)


def _invoke(fn: Callable[..., Any], kwargs: dict[str, Any], span: list[float]) -> Any:
    span[0] = monotonic()  # a worker picked it up: the queue ends here
    try:
        return fn(**kwargs)
    finally:
        span[1] = monotonic()


def _invoke_timed(
    fn: Callable[..., Any], kwargs: dict[str, Any], call: _TimedCall, stuck: _StuckWorkers
) -> Any:
    call.started = monotonic()
    try:
        return fn(**kwargs)
    finally:
        stuck.finished(call)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the server's own frames: the traceback starts in the user's function."""
    start = tb
    while tb is not None:
        if tb.tb_frame.f_code in _CALL_FRAMES:
            start = tb.tb_next
        tb = tb.tb_next
    return start


# The frames that call the user's function (``add_call_frames``: the streaming producers).
_CALL_FRAMES = {_invoke.__code__, _invoke_timed.__code__, Executor.run_async.__code__}


def add_call_frames(*codes: CodeType) -> None:
    """Frames that call the user's function, left out of ``function_error`` tracebacks."""
    _CALL_FRAMES.update(codes)
