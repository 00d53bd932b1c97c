"""Streaming results (``docs/protocol.md``, Streaming results): items as NDJSON lines.

``stream_lines`` runs one streaming call and yields its lines as they are
produced, in batches: ``{"item": …}\\n`` lines, then one last line,
``{"done":true}\\n`` or ``{"error": {…}}\\n``. ``respond`` writes them to an
HTTP answer; a job (``_jobs.py``) collects them.

- A sync generator runs whole on one worker of the executor (the same pool,
  so the concurrency limit holds for streams): it hands encoded lines to the
  event loop through ``_Handoff``, which wakes the loop only when it waits,
  so a fast producer costs one wake-up per batch, not per item. A bounded
  backlog makes a producer wait for a slow client.
- An async generator runs on the event loop, in the task that writes it.
- Stopping: closing the line iterator (a disconnect, a cancelled job, a
  timeout) closes an async generator at once (its ``finally`` runs); a sync
  generator is closed on its worker at its next ``yield``.
- Timeouts: ``call_timeout`` bounds the whole stream, ``item_timeout`` the
  wait for each item; both clocks start when the function starts.

Each item is encoded by ``_encode.encode`` (the call path's encoder), so
every type a result can be, an item can be.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import suppress
from time import monotonic
from typing import Any

from scopegen import protocol
from scopegen.server._encode import encode
from scopegen.server._errors import CallError
from scopegen.server._executor import Executor, add_call_frames

__all__ = ["DONE", "is_item", "item_value", "respond", "stream_lines"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DONE = b'{"done":true}\n'
_ITEM_PREFIX = b'{"item":'
_NDJSON = (b"content-type", protocol.NDJSON_MEDIA_TYPE.encode())
_REQUEST_ID = protocol.REQUEST_ID_HEADER.encode()
_MAX_BACKLOG = 256  # lines a sync producer may run ahead of the client


def item_value(line: bytes) -> bytes:
    """The JSON of the item in one ``{"item":…}\\n`` line (a job keeps these)."""
    return line[len(_ITEM_PREFIX) : -2]


def is_item(line: bytes) -> bool:
    return line.startswith(_ITEM_PREFIX)


def _line(value: Any, tensors: bool) -> bytes:
    # The call path's encoder; ``tensors``: items may hold tensors (their JSON form).
    return encode("item", value, tensors=tensors) + b"\n"


class _Handoff:
    """Encoded lines from a worker thread to the event loop.

    The worker appends, and wakes the loop (``call_soon_threadsafe``) only
    when the loop said it is waiting; ``end`` is the last line, set once.
    ``stopped`` asks the worker to stop at its next item.
    """

    __slots__ = (
        "end",
        "last",
        "lines",
        "loop",
        "space",
        "started",
        "stopped",
        "tensors",
        "tracked",
        "waiting",
        "wake",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, tracked: Any, tensors: bool) -> None:
        self.loop = loop
        self.tensors = tensors
        self.tracked = tracked  # the executor's stuck-worker handle (timeouts only)
        self.lines: deque[bytes] = deque()
        self.end: bytes | None = None
        self.waiting = False
        self.wake = asyncio.Event()
        self.space = threading.Event()
        self.space.set()
        self.stopped = False
        self.started = 0.0  # monotonic time the worker started the function
        self.last = 0.0  # monotonic time of the last item (or the start)

    # ------------------------------------------------------------ worker thread

    def _notify(self, always: bool = False) -> None:
        if self.waiting or always:
            self.waiting = False
            with suppress(RuntimeError):  # the loop closed under a stopped stream
                self.loop.call_soon_threadsafe(self.wake.set)

    def start(self) -> None:
        self.started = self.last = monotonic()
        self._notify(always=True)

    def put(self, line: bytes) -> None:
        self.lines.append(line)
        self.last = monotonic()
        self._notify()
        while len(self.lines) >= _MAX_BACKLOG and not self.stopped:
            self.space.clear()
            self._notify(always=True)
            if len(self.lines) >= _MAX_BACKLOG:
                self.space.wait(0.5)

    def finish(self, line: bytes) -> None:
        if self.end is None:
            self.end = line
        self._notify(always=True)


def _produce(
    h: _Handoff,
    executor: Executor,
    name: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
) -> None:
    """A worker runs a sync streaming function whole, handing its lines to the loop."""
    try:
        _produce_lines(h, executor, name, fn, kwargs)
    finally:
        executor.finished(h.tracked)


def _produce_lines(
    h: _Handoff,
    executor: Executor,
    name: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
) -> None:
    h.start()
    try:
        it = iter(fn(**kwargs))
    except BaseException as exc:  # A function may raise anything; the server survives.
        h.finish(executor.raised(name, exc).body + b"\n")
        return
    try:
        while not h.stopped:
            try:
                item = next(it)
            except StopIteration:
                h.finish(DONE)
                return
            except BaseException as exc:
                h.finish(executor.raised(name, exc).body + b"\n")
                return
            try:
                line = _line(item, h.tensors)
            except CallError as err:
                h.finish(err.body + b"\n")
                return
            h.put(line)
    finally:
        # Stopped early: the generator's ``finally`` runs here, on its worker.
        close = getattr(it, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                sys.stderr.write(f"ERROR:    closing the stream of {name} raised {exc!r}\n")
        h.finish(DONE)  # no-op unless stopped; nobody reads it then


def _timeout_line(name: str, what: str, seconds: float) -> bytes:
    return CallError("timeout", f"{name} ran past the {what} timeout of {seconds:g} s").body + b"\n"


def stream_lines(
    executor: Executor,
    name: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    is_async: bool,
    call_timeout: float | None,
    item_timeout: float | None,
    tensors: bool = False,
) -> AsyncIterator[list[bytes]]:
    """The lines of one streaming call, in batches as they are produced; the end line last.

    Raises ``CallError`` only before anything runs (every worker stuck).
    """
    if is_async:
        return _async_lines(executor, name, fn, kwargs, call_timeout, item_timeout, tensors)
    loop = asyncio.get_running_loop()
    h = _Handoff(loop, executor.track(), tensors)
    executor.submit(_produce, h, executor, name, fn, kwargs)
    return _sync_lines(h, executor, name, call_timeout, item_timeout)


async def _sync_lines(
    h: _Handoff,
    executor: Executor,
    name: str,
    call_timeout: float | None,
    item_timeout: float | None,
) -> AsyncIterator[list[bytes]]:
    lines = h.lines
    try:
        while True:
            if lines:
                n = len(lines)
                batch = [lines.popleft() for _ in range(n)]
                h.space.set()
                yield batch
                continue
            end = h.end
            if end is not None:
                if not lines:
                    yield [end]
                    return
                continue
            h.wake.clear()
            h.waiting = True
            if lines or h.end is not None:
                h.waiting = False
                continue
            wait = _remaining(h.started, h.last, call_timeout, item_timeout)
            if wait is None:
                await h.wake.wait()
                continue
            if wait[0] > 0:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(h.wake.wait(), wait[0])
                continue
            if lines or h.end is not None:
                continue
            # The worker stays busy until the generator's next yield: count it as stuck.
            executor.timed_out(h.tracked)
            yield [_timeout_line(name, *wait[1])]
            return
    finally:
        h.stopped = True
        h.space.set()


def _remaining(
    started: float, last: float, call_timeout: float | None, item_timeout: float | None
) -> tuple[float, tuple[str, float]] | None:
    """Seconds until the nearer deadline, and which; ``None``: no deadline (yet)."""
    if not started or (call_timeout is None and item_timeout is None):
        return None
    now = monotonic()
    best: tuple[float, tuple[str, float]] | None = None
    if call_timeout is not None:
        best = (started + call_timeout - now, ("per-call", call_timeout))
    if item_timeout is not None:
        left = last + item_timeout - now
        if best is None or left < best[0]:
            best = (left, ("per-item", item_timeout))
    return best


async def _async_lines(
    executor: Executor,
    name: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    call_timeout: float | None,
    item_timeout: float | None,
    tensors: bool,
) -> AsyncIterator[list[bytes]]:
    ait: Any = None
    try:
        agen = fn(**kwargs)
        if inspect.isawaitable(agen):  # an ``async def`` returning an async iterator
            agen = await agen
        ait = agen.__aiter__()
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        yield [executor.raised(name, exc).body + b"\n"]
        return
    timed = call_timeout is not None or item_timeout is not None
    started = last = monotonic()
    try:
        while True:
            try:
                if not timed:
                    item = await ait.__anext__()
                else:
                    wait = _remaining(started, last, call_timeout, item_timeout)
                    assert wait is not None
                    try:
                        item = await asyncio.wait_for(ait.__anext__(), max(wait[0], 0.0))
                    except asyncio.TimeoutError:
                        yield [_timeout_line(name, *wait[1])]
                        return
                    last = monotonic()
            except StopAsyncIteration:
                yield [DONE]
                return
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                yield [executor.raised(name, exc).body + b"\n"]
                return
            try:
                line = _line(item, tensors)
            except CallError as err:
                yield [err.body + b"\n"]
                return
            yield [line]
    finally:
        aclose = getattr(ait, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except BaseException as exc:
                sys.stderr.write(f"ERROR:    closing the stream of {name} raised {exc!r}\n")


add_call_frames(_produce.__code__, _produce_lines.__code__, _async_lines.__code__)


async def respond(
    send: Send,
    receive: Receive,
    lines: AsyncIterator[list[bytes]],
    rid: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> bool:
    """Write a stream as it comes; stop it when the client goes. True: it was written whole."""
    head = [_NDJSON, (_REQUEST_ID, rid), *headers]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    pump = asyncio.ensure_future(_pump(send, lines))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not pump.done():
            pump.cancel()  # the client went away: close the generator now
        with suppress(asyncio.CancelledError):
            await pump
    return not pump.cancelled() and pump.result()


async def _pump(send: Send, lines: AsyncIterator[list[bytes]]) -> bool:
    try:
        async for batch in lines:
            body = batch[0] if len(batch) == 1 else b"".join(batch)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return True
    except OSError:  # the server's write failed: the client is gone
        return False
    finally:
        aclose = getattr(lines, "aclose", None)
        if aclose is not None:
            await aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
