"""The in-process ASGI driver under ``scopegen.testing``: lifespan, streaming, disconnects.

A hand-written ASGI app stands in for the server here, so that streaming
answers (NDJSON, decoded by ``Stream``) are exercised whatever the server
streams today.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from scopegen.testing import CallError, Stream
from scopegen.testing._asgi import _WINDOW, Driver

Message = MutableMapping[str, Any]
NDJSON = [(b"content-type", b"application/x-ndjson")]


class StreamingApp:
    """Streams ``{"item": i}`` lines for ``GET /items?n``; records what happened."""

    def __init__(self, *, tail: bytes = b'{"done":true}\n') -> None:
        self.tail = tail
        self.lifespan: list[str] = []
        self.sent = 0
        self.disconnected = threading.Event()
        self.finished = threading.Event()
        self.go_on = threading.Event()
        self.wait_after_first = False

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        assert (await receive())["type"] == "http.request"
        if scope["path"] == "/raise":
            raise ZeroDivisionError("app bug")

        async def watch() -> None:
            if (await receive())["type"] == "http.disconnect":
                self.disconnected.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        n = int(scope["query_string"] or b"3")
        await send({"type": "http.response.start", "status": 200, "headers": NDJSON})
        for i in range(n):
            if self.disconnected.is_set():
                break
            await send(
                {"type": "http.response.body", "body": b'{"item":%d}\n' % i, "more_body": True}
            )
            self.sent += 1
            await asyncio.sleep(0)  # lets the disconnect watcher run
            if i == 0 and self.wait_after_first:
                while not self.go_on.is_set():
                    await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": self.tail})
        self.finished.set()
        await asyncio.sleep(0)
        watcher.cancel()


def test_lifespan_starts_once_and_shuts_down_at_close() -> None:
    app = StreamingApp()
    driver = Driver(app)
    assert app.lifespan == ["lifespan.startup"]
    driver.close()
    driver.close()
    assert app.lifespan == ["lifespan.startup", "lifespan.shutdown"]
    with pytest.raises(RuntimeError, match="closed"):
        driver.request("GET", "/items")


def test_items_arrive_while_the_app_is_still_producing() -> None:
    app = StreamingApp()
    app.wait_after_first = True
    driver = Driver(app)
    try:
        stream = Stream(driver.request("GET", "/items?3"))
        assert next(stream) == 0  # would hang if the driver waited for the whole body
        assert not app.finished.is_set()
        app.go_on.set()
        assert list(stream) == [1, 2]
        assert app.finished.wait(5)
    finally:
        driver.close()


def test_a_fast_app_runs_ahead_of_the_reader_by_a_window_at_most() -> None:
    app = StreamingApp()
    driver = Driver(app)
    try:
        with Stream(driver.request("GET", "/items?1000")) as stream:
            assert next(stream) == 0
            time.sleep(0.2)
            assert app.sent <= _WINDOW + 1
    finally:
        driver.close()


def test_closing_a_stream_early_is_a_disconnect() -> None:
    app = StreamingApp()
    driver = Driver(app)
    try:
        stream = Stream(driver.request("GET", "/items?1000"))
        assert [next(stream), next(stream)] == [0, 1]
        stream.close()
        assert app.disconnected.wait(5)
        assert app.finished.wait(5)
        assert app.sent < 1000
        with pytest.raises(StopIteration):
            next(stream)
    finally:
        driver.close()


def test_an_error_line_raises_with_the_codes_status() -> None:
    tail = b'{"error":{"code":"function_error","message":"died","type":"ValueError"}}\n'
    driver = Driver(StreamingApp(tail=tail))
    try:
        stream = Stream(driver.request("GET", "/items?2"))
        assert [next(stream), next(stream)] == [0, 1]
        with pytest.raises(CallError) as info:
            next(stream)
        assert (info.value.code, info.value.status, info.value.type) == (
            "function_error",
            500,
            "ValueError",
        )
    finally:
        driver.close()


def test_a_stream_without_its_done_line_is_an_error() -> None:
    driver = Driver(StreamingApp(tail=b""))
    try:
        with pytest.raises(RuntimeError, match="without its closing"):
            list(Stream(driver.request("GET", "/items?2")))
    finally:
        driver.close()


def test_an_exception_in_the_app_reaches_the_caller() -> None:
    driver = Driver(StreamingApp())
    try:
        with pytest.raises(ZeroDivisionError, match="app bug"):
            driver.request("GET", "/raise")
        assert driver.request("GET", "/items?1").read() == (b'{"item":0}\n{"done":true}\n')
    finally:
        driver.close()


def test_closing_the_driver_disconnects_an_unread_stream() -> None:
    app = StreamingApp()
    driver = Driver(app)
    stream = Stream(driver.request("GET", "/items?100000"))
    assert next(stream) == 0
    t0 = time.monotonic()
    driver.close()  # the app is blocked on the reader's window until it sees the disconnect
    assert app.disconnected.is_set()
    assert time.monotonic() - t0 < 5
