"""The ASGI application of protocol v1 (DESIGN §4): a route table and a few helpers.

Hot path of ``POST /v1/call/{function}``: one dict lookup for the route, one
pass over the headers, ``orjson.loads`` + a pydantic-core validator built at
start-up, ``loop.run_in_executor`` on a dedicated pool (its queue is the
concurrency limit: no semaphore), ``orjson.dumps`` and two ``send`` calls.
Timeouts cost a dict entry scanned by one periodic timer, only when
configured; the access log is a preformatted line appended to a buffer
flushed by one timer.

``serve --reload`` swaps the endpoint and GET tables whole, on the event
loop, between requests (``install``): the call path takes no lock for it.

Everything is loaded by the factory, so the app works without lifespan
events (Modal's ``@modal.asgi_app`` and uvicorn both send them; on shutdown
the worker pool is released and the access log flushed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import inspect
import itertools
import os
import re
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from time import monotonic, perf_counter
from types import TracebackType
from typing import IO, Any

import orjson
from pydantic_core import SchemaValidator, ValidationError

from scopegen.emit.openapi import openapi
from scopegen.server._encode import (
    INVALID,
    OPTIONS,
    default,
    describe_unserializable,
    dumps_fallback,
    loads_exact,
)
from scopegen.server._loader import LoadedInterface
from scopegen.server._settings import ServerSettings
from scopegen.server._validate import build_validator, error_details

__all__ = ["ScopegenApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CALL_PREFIX = "/v1/call/"
_CALL_PREFIX_LEN = len(_CALL_PREFIX)
_JSON = (b"content-type", b"application/json")
_REQUEST_ID_OK = re.compile(rb"[A-Za-z0-9._:@+=/-]{1,128}")


def _error(code: str, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


_NOT_FOUND = _error("not_found", "no such route; calls are POST /v1/call/{function}")
_UNAUTHORIZED = _error("unauthorized", "missing or wrong 'Authorization: Bearer <token>' header")
_HEALTH = orjson.dumps({"status": "ok"})


@dataclass(frozen=True, slots=True)
class _Endpoint:
    name: str
    fn: Callable[..., Any]
    validator: SchemaValidator
    is_async: bool


@dataclass(frozen=True, slots=True)
class _Tables:
    """The routes of one version of the interface, swapped in whole by ``install``."""

    loaded: LoadedInterface
    endpoints: dict[str, _Endpoint]
    static: dict[str, bytes]


class _AccessLog:
    """Buffered access-log lines, written by one timer per batch (not per call)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._pending = False

    def add(self, line: str) -> None:
        self._lines.append(line)
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_later(0.02, self.flush)

    def flush(self) -> None:
        self._pending = False
        if not self._lines:
            return
        data = "".join(self._lines)
        self._lines.clear()
        stream = self._stream or sys.stderr
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):
            pass  # A closed stream must not break calls.


class _Watchdog:
    """Per-call timeouts of sync calls, counted from when a worker starts each call.

    One timer per tick scans the calls in flight, instead of a timer per call
    (a ``call_later`` + ``cancel`` per call costs as much as the rest of a
    trivial call). A worker writes the call's start time into its cell, so
    queueing never counts and no cross-thread wake-up is needed. A timeout
    fires within one tick (a twentieth of it, 5 ms to 250 ms) of its due time.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(max(timeout / 20, 0.005), 0.25)
        # future -> [start time (0.0 until a worker starts it), expired, done, stuck]
        self.calls: dict[asyncio.Future[Any], list[Any]] = {}
        self.stuck = _StuckWorkers()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], cell: list[Any]
    ) -> None:
        self.calls[future] = cell
        # A loop may have closed under a pending tick (an app reused across loops).
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self.tick, self._scan)

    def _scan(self) -> None:
        due = monotonic() - self.timeout
        for future, cell in list(self.calls.items()):
            if cell[0] and cell[0] <= due:
                cell[1] = True
                del self.calls[future]
                future.cancel()
                self.stuck.expired(cell)
        if self.calls and self._loop is not None:
            self._handle = self._loop.call_later(self.tick, self._scan)
        else:
            self._handle = None


class _StuckWorkers:
    """Worker threads still running a sync call that already got its 504.

    Threads cannot be killed; when every worker is stuck, new sync calls
    would queue forever, so the server answers them 503 (the client retries
    those safely: the function never ran) and ``/healthz`` says "degraded"
    so an orchestrator can restart the process. A lock guards only the
    expire/finish handshake of timed calls, never the plain call path.
    """

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def expired(self, cell: list[Any]) -> None:  # event loop thread
        with self.lock:
            if not cell[2]:
                cell[3] = True
                self.count += 1

    def finished(self, cell: list[Any]) -> None:  # worker thread
        with self.lock:
            cell[2] = True
            if cell[3]:
                cell[3] = False
                self.count -= 1


class ScopegenApp:
    """ASGI callable serving one loaded interface."""

    def __init__(self, loaded: LoadedInterface, settings: ServerSettings) -> None:
        self.settings = settings
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="scopegen-call"
        )
        self._token = f"Bearer {settings.token}".encode() if settings.token else None
        self._timeout = settings.call_timeout
        self._watchdog = _Watchdog(settings.call_timeout) if settings.call_timeout else None
        self._max_body = settings.max_body
        self._hide_tb = settings.hide_tracebacks
        self._log = _AccessLog(settings.log_stream) if settings.access_log else None
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex() + "-"
        # Lifespan hooks (starlette's shape): run on the event loop at start-up and
        # shutdown, e.g. the watcher of ``serve --reload``.
        self.on_startup: list[Callable[[asyncio.AbstractEventLoop], None]] = []
        self.on_shutdown: list[Callable[[], None]] = []
        self.loaded = loaded
        tables = self.prepare(loaded)
        # Exposed name -> endpoint, and GET routes: path -> pre-encoded body.
        self._endpoints: dict[str, _Endpoint] = tables.endpoints
        self._static: dict[str, bytes] = tables.static

    def prepare(self, loaded: LoadedInterface) -> _Tables:
        """Build the routes of one version of the interface (validators, manifest, OpenAPI)."""
        interface = loaded.interface
        types = interface.type_map()
        namespace = vars(loaded.module)
        endpoints: dict[str, _Endpoint] = {}
        for fn in interface.functions:
            obj = loaded.functions[fn.name]
            endpoints[fn.name] = _Endpoint(
                fn.name,
                obj,
                build_validator(fn, types, namespace),
                # The running object decides (a decorator may have changed it).
                inspect.iscoroutinefunction(obj),
            )
        static = {
            "/v1/functions": orjson.dumps(interface.manifest()),
            "/openapi.json": orjson.dumps(openapi(interface, auth=self._token is not None)),
        }
        return _Tables(loaded, endpoints, static)

    def install(self, tables: _Tables) -> None:
        """Serve another version of the interface (``serve --reload``).

        Call it on the event loop's thread: each request then sees the old
        tables or the new ones, never a mix, with no lock on the call path.
        A call that already looked up its endpoint finishes on the old version.
        """
        self._endpoints = tables.endpoints
        self._static = tables.static
        self.loaded = tables.loaded

    # ----------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # Websockets: returning without accepting makes the server refuse them.

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                for hook in self.on_startup:
                    hook(loop)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for stop in self.on_shutdown:
                    stop()
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Release the worker pool (running calls finish) and flush the access log."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._log is not None:
            self._log.flush()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = perf_counter()
        path: str = scope["path"]
        if path == "/healthz":
            rid = self._request_id(scope["headers"])
            if scope["method"] == "GET":
                stuck = self._stuck_workers()
                if stuck:
                    degraded = orjson.dumps({"status": "degraded", "stuck_calls": stuck})
                    await _respond(send, 503, degraded, rid)
                else:
                    await _respond(send, 200, _HEALTH, rid)
            else:
                await _respond(send, 405, _method_error("GET"), rid, allow=b"GET")
            return
        auth: bytes | None = None
        clen: bytes | None = None
        given: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value
            elif key == b"content-length":
                clen = value
            elif key == b"x-request-id":
                given = value
        rid = given if given is not None and _REQUEST_ID_OK.fullmatch(given) else self._new_id()
        if path.startswith(_CALL_PREFIX):
            name = path[_CALL_PREFIX_LEN:]
            status = await self._call(name, scope, receive, send, auth, clen, rid)
            if self._log is not None:
                shown = name if name in self._endpoints else repr(name[:80])
                ms = (perf_counter() - t0) * 1000.0
                self._log.add(f"INFO:     call {shown} {status} {ms:.2f}ms {rid.decode()}\n")
            return
        if self._token is not None and not self._authorized(auth):
            status = 401
            await _respond(send, 401, _UNAUTHORIZED, rid, bearer=True)
        elif (body := self._static.get(path)) is None:
            status = 404
            await _respond(send, 404, _NOT_FOUND, rid)
        elif scope["method"] != "GET":
            status = 405
            await _respond(send, 405, _method_error("GET"), rid, allow=b"GET")
        else:
            status = 200
            await _respond(send, 200, body, rid)
        if self._log is not None:
            ms = (perf_counter() - t0) * 1000.0
            shown = f"{scope['method']} {path[:80]!r}"
            self._log.add(f"INFO:     {shown} {status} {ms:.2f}ms {rid.decode()}\n")

    def _authorized(self, auth: bytes | None) -> bool:
        """Constant-time bearer check; the scheme name is case-insensitive (RFC 7235)."""
        assert self._token is not None
        if auth is None:
            return False
        if hmac.compare_digest(auth, self._token):
            return True
        scheme, _, credentials = auth.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            credentials.strip(), self._token[7:]
        )

    def _request_id(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        for key, value in headers:
            if key == b"x-request-id" and _REQUEST_ID_OK.fullmatch(value):
                return value
        return self._new_id()

    def _new_id(self) -> bytes:
        return f"{self._id_prefix}{next(self._ids):x}".encode()

    # ----------------------------------------------------------------- calls

    async def _call(
        self,
        name: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        auth: bytes | None,
        clen: bytes | None,
        rid: bytes,
    ) -> int:
        """Answer one call; return the status sent (0 if the client went away)."""
        if self._token is not None and not self._authorized(auth):
            await _respond(send, 401, _UNAUTHORIZED, rid, bearer=True)
            return 401
        ep = self._endpoints.get(name)
        if ep is None:
            body = _error("unknown_function", f"no exposed function named {name[:200]!r}")
            await _respond(send, 404, body, rid)
            return 404
        if scope["method"] != "POST":
            await _respond(send, 405, _method_error("POST"), rid, allow=b"POST")
            return 405
        # Refuse on the declared length before reading anything.
        if clen is not None and clen.isdigit() and int(clen) > self._max_body:
            await _respond(send, 413, self._too_large(), rid)
            return 413
        message = await receive()
        raw: bytes = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [raw]
            size = len(raw)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return 0
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    await _respond(send, 413, self._too_large(), rid)
                    return 413
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            raw = b"".join(chunks)
        elif message["type"] == "http.disconnect":
            return 0
        if len(raw) > self._max_body:
            await _respond(send, 413, self._too_large(), rid)
            return 413

        exact = False
        if raw:
            try:
                # orjson refuses NaN, Infinity, numbers that overflow a double
                # (1e400) and lone surrogates: what JSON cannot carry back.
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                # A huge integer literal is valid JSON that orjson cannot hold.
                data = loads_exact(raw)
                if data is INVALID:
                    body = _error("bad_request", f"the body is not valid JSON: {exc}")
                    await _respond(send, 400, body, rid)
                    return 400
                exact = True
            if type(data) is not dict:
                body = _error(
                    "bad_request",
                    f"the body must be a JSON object of arguments, not {_json_type(data)}",
                )
                await _respond(send, 400, body, rid)
                return 400
        else:
            data = {}
        try:
            kwargs = ep.validator.validate_python(data)
        except ValidationError as exc:
            # orjson reads integers past 64 bits as floats; an exact re-read may
            # make the arguments valid (only ever on this failing path).
            retried = None if exact or not raw else _validate_exact(ep.validator, raw)
            if retried is None:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                body = _error(
                    "invalid_arguments",
                    f"invalid arguments for {name}: {len(errors)} error(s)",
                    details=error_details(errors),
                )
                await _respond(send, 422, body, rid)
                return 422
            kwargs = retried

        try:
            if ep.is_async:
                result = await self._run_async(ep, kwargs)
            else:
                result = await self._run_sync(ep, kwargs)
        except _CallTimeout:
            body = _error("timeout", f"{name} ran past the per-call timeout of {self._timeout:g} s")
            await _respond(send, 504, body, rid)
            return 504
        except _Unavailable:
            body = _error(
                "unavailable",
                f"every worker ({self.settings.max_concurrency}) is still running a call that"
                " ran past its timeout; the call did not run",
            )
            await _respond(send, 503, body, rid, retry_after=b"1")
            return 503
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # A function may raise anything; the server survives.
            await _respond(send, 500, self._function_error(name, exc), rid)
            return 500

        try:
            out = orjson.dumps({"result": result}, default=default, option=OPTIONS)
        except TypeError as exc:
            fallback = dumps_fallback(result)
            if fallback is None:
                body = _error("unserializable_result", describe_unserializable(result, exc))
                await _respond(send, 500, body, rid)
                return 500
            out = fallback
        await _respond(send, 200, out, rid)
        return 200

    def _stuck_workers(self) -> int:
        """How many workers are stuck, when all of them are (else 0)."""
        watchdog = self._watchdog
        if watchdog is None:
            return 0
        n = watchdog.stuck.count
        return n if n >= self.settings.max_concurrency else 0

    async def _run_sync(self, ep: _Endpoint, kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        if self._timeout is None:
            return await loop.run_in_executor(self._executor, _invoke, ep.fn, kwargs)
        watchdog = self._watchdog
        assert watchdog is not None
        if watchdog.stuck.count >= self.settings.max_concurrency:
            raise _Unavailable
        cell: list[Any] = [0.0, False, False, False]
        future = loop.run_in_executor(
            self._executor, _invoke_timed, ep.fn, kwargs, cell, watchdog.stuck
        )
        watchdog.watch(loop, future, cell)
        try:
            return await future
        except asyncio.CancelledError:
            if cell[1]:
                raise _CallTimeout from None
            raise
        finally:
            watchdog.calls.pop(future, None)

    async def _run_async(self, ep: _Endpoint, kwargs: dict[str, Any]) -> Any:
        if self._timeout is None:
            return await ep.fn(**kwargs)
        # asyncio.timeout (3.11+) only cancels this task; wait_for is the 3.10 fallback.
        if sys.version_info >= (3, 11):
            cm = asyncio.timeout(self._timeout)
            try:
                async with cm:
                    return await ep.fn(**kwargs)
            except TimeoutError:
                if cm.expired():
                    raise _CallTimeout from None
                raise
        try:
            return await asyncio.wait_for(ep.fn(**kwargs), self._timeout)
        except asyncio.TimeoutError:
            raise _CallTimeout from None

    def _function_error(self, name: str, exc: BaseException) -> bytes:
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
        return _error("function_error", message or type_name, **extra)

    def _too_large(self) -> bytes:
        return _error(
            "payload_too_large", f"the body is over the server's limit of {self._max_body} bytes"
        )


class _CallTimeout(Exception):
    pass


class _Unavailable(Exception):
    pass


def _validate_exact(validator: SchemaValidator, raw: bytes) -> dict[str, Any] | None:
    data = loads_exact(raw)
    if data is INVALID:
        return None
    try:
        kwargs: dict[str, Any] = validator.validate_python(data)
    except ValidationError:
        return None
    return kwargs


def _invoke(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


def _invoke_timed(
    fn: Callable[..., Any], kwargs: dict[str, Any], cell: list[Any], stuck: _StuckWorkers
) -> Any:
    cell[0] = monotonic()
    try:
        return fn(**kwargs)
    finally:
        stuck.finished(cell)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the server's own frames: the traceback starts in the user's function."""
    start = tb
    while tb is not None:
        if tb.tb_frame.f_code in _CALL_FRAMES:
            start = tb.tb_next
        tb = tb.tb_next
    return start


_CALL_FRAMES = frozenset(
    {_invoke.__code__, _invoke_timed.__code__, ScopegenApp._run_async.__code__}
)


def _method_error(allowed: str) -> bytes:
    return _error("method_not_allowed", f"this route only answers {allowed}")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    rid: bytes,
    *,
    allow: bytes | None = None,
    bearer: bool = False,
    retry_after: bytes | None = None,
) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body)), (b"x-request-id", rid)]
    if allow is not None:
        headers.append((b"allow", allow))
    if retry_after is not None:
        headers.append((b"retry-after", retry_after))
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
