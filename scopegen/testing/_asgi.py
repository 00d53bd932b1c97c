"""An ASGI app driven in this process: no socket, no server, no subprocess.

The app runs on its own event loop in a daemon thread for the driver's whole
life, as under uvicorn: the lifespan start-up runs first, the shutdown at
``close``, and each request is a task on that loop. The calling thread blocks
on a queue of the messages the app sends, so a streaming answer arrives chunk
by chunk while the app is still producing it. The app may run ahead of the
reader by ``_WINDOW`` chunks at most (a socket's back-pressure); closing a
response early is a client disconnect (``http.disconnect``), and what the app
sends afterwards is dropped, as a server drops writes to a closed connection.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future
from typing import Any

__all__ = ["Driver", "Response"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

# Body chunks the app may send before the reader takes the first of them.
_WINDOW = 16
# How long start-up and shutdown may take before the driver gives up on them.
_LIFESPAN_TIMEOUT = 60.0
_END = object()


class _Exchange:
    """One request's state, shared by the loop (app side) and the caller (reader side)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Made on the loop, before the app runs (``serve``).
        self.disconnected: asyncio.Event | None = None
        self.room: asyncio.Event | None = None
        self.unread = 0
        self.closed = False

    # ---- loop side

    async def serve(self, app: ASGIApp, scope: MutableMapping[str, Any], body: bytes) -> None:
        disconnected = self.disconnected = asyncio.Event()
        room = self.room = asyncio.Event()
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if self.closed:
                return
            if message["type"] == "http.response.body" and message.get("more_body", False):
                while self.unread >= _WINDOW and not self.closed:
                    room.clear()
                    await room.wait()
                self.unread += 1
            self.out.put(message)

        try:
            await app(scope, receive, send)
        except BaseException as exc:
            self.out.put(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.out.put(_END)
            disconnected.set()

    def _took(self) -> None:
        self.unread -= 1
        if self.room is not None:
            self.room.set()

    def _abort(self) -> None:
        self.closed = True
        if self.room is not None and self.disconnected is not None:
            self.room.set()
            self.disconnected.set()

    # ---- caller side

    def next_message(self) -> Message | None:
        """The app's next message; None once it returned. Re-raises what the app raised."""
        item = self.out.get()
        if item is _END:
            self.out.put(_END)  # later reads see the end too
            return None
        if isinstance(item, BaseException):
            raise item
        message: Message = item
        if message["type"] == "http.response.body" and message.get("more_body", False):
            self.loop.call_soon_threadsafe(self._took)
        return message

    def abort(self) -> None:
        self.loop.call_soon_threadsafe(self._abort)


class Response:
    """An answer from the app: status and headers at once, the body as it comes."""

    def __init__(self, exchange: _Exchange, start: Message) -> None:
        self._exchange = exchange
        self.status: int = start["status"]
        # Lower-case names, as ASGI sends them; a repeated header keeps its last value.
        self.headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", ())
        }
        self._done = False
        self._body: bytes | None = None

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's chunks as the app sends them."""
        if self._body is not None:
            yield self._body
            return
        while not self._done:
            message = self._exchange.next_message()
            if message is None:
                self._done = True
                return
            if message["type"] != "http.response.body":
                continue
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self._done = True
            if chunk:
                yield chunk

    def read(self) -> bytes:
        """The whole body (waits for the end of a stream)."""
        if self._body is None:
            self._body = b"".join(self.iter_bytes())
        return self._body

    def json(self) -> Any:
        """The body parsed as JSON (integers stay exact)."""
        from pydantic_core import from_json

        return from_json(self.read())

    def close(self) -> None:
        """Stop reading: the app sees the client disconnect."""
        if not self._done:
            self._done = True
            self._exchange.abort()


class Driver:
    """Runs one ASGI app on a private event loop thread; ``request`` from any other thread."""

    def __init__(self, app: ASGIApp, *, name: str = "scopegen-testing") -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._lifespan_in: asyncio.Queue[Message] | None = None
        self._lifespan: Future[None] | None = None
        self._closed = False
        # Answers still being read: closing disconnects them, so no stream waits forever.
        self._open: weakref.WeakSet[_Exchange] = weakref.WeakSet()
        try:
            self._start()
        except BaseException:
            self._stop_loop()
            raise

    # ---- lifespan

    def _start(self) -> None:
        started: Future[Message] = Future()

        async def lifespan() -> None:
            inbox: asyncio.Queue[Message] = asyncio.Queue()
            self._lifespan_in = inbox

            async def send(message: Message) -> None:
                if message["type"].startswith("lifespan.startup") and not started.done():
                    started.set_result(message)

            await inbox.put({"type": "lifespan.startup"})
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
            try:
                await self._app(scope, inbox.get, send)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        self._lifespan = asyncio.run_coroutine_threadsafe(lifespan(), self._loop)
        message = started.result(_LIFESPAN_TIMEOUT)
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app's start-up failed: {message.get('message', '')}")

    def close(self) -> None:
        """Run the lifespan shutdown, then stop the loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for exchange in list(self._open):
            exchange.abort()
        try:
            inbox, lifespan = self._lifespan_in, self._lifespan
            if inbox is not None and lifespan is not None and not lifespan.done():
                shutdown = {"type": "lifespan.shutdown"}
                self._loop.call_soon_threadsafe(inbox.put_nowait, shutdown)
                lifespan.result(_LIFESPAN_TIMEOUT)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self._loop).result(_LIFESPAN_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_LIFESPAN_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()

    # ---- requests

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Send one request; return once the app started its answer (status and headers)."""
        if self._closed:
            raise RuntimeError("the app is closed")
        target, _, query = path.partition("?")
        head = [(b"content-length", b"%d" % len(body))]
        head += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": target,
            "raw_path": target.encode("utf-8", "surrogateescape"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": head,
            "client": ("127.0.0.1", 0),
            "server": ("scopegen.testing", 0),
            "state": {},
        }
        exchange = _Exchange(self._loop)
        self._open.add(exchange)
        asyncio.run_coroutine_threadsafe(exchange.serve(self._app, scope, body), self._loop)
        while True:
            message = exchange.next_message()
            if message is None:
                raise RuntimeError(f"the app returned without answering {method} {path}")
            if message["type"] == "http.response.start":
                return Response(exchange, message)
