"""The ASGI application of protocol v1 (``docs/protocol.md``): a route table and a call path.

Hot path of ``POST /v1/call/{function}`` (starlette's shape, raw ASGI): one
dict lookup for the route, one pass over the headers, then small steps that
each return their value or raise ``CallError`` (``_authorize``, ``_endpoint``,
``_read_body``, ``_decode``, ``_validate``, the endpoint's runner, ``_encode``);
one ``except`` in ``_call`` answers, and exceptions cost only on the error
path. The steps: ``orjson.loads``, a pydantic-core validator built at
start-up, the ``Executor`` (``_executor.py``: a worker pool whose queue is
the concurrency limit, per-call timeouts), ``orjson.dumps``, two ``send``
calls. The access log is a preformatted line appended to a buffer flushed by
one timer.

``serve --reload`` swaps the endpoint and GET tables whole, on the event
loop, between requests (``install``): the call path takes no lock for it.

Everything is loaded by the factory, so the app works without lifespan
events (Modal's ``@modal.asgi_app`` and uvicorn both send them; on shutdown
the worker pool is released and the access log flushed).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import itertools
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from time import perf_counter
from types import CodeType, FrameType
from typing import IO, Any

import orjson
from pydantic_core import SchemaValidator, ValidationError

from scopegen import protocol
from scopegen.emit.openapi import openapi
from scopegen.emit.schema import manifest
from scopegen.server._encode import INVALID, encode, loads_exact
from scopegen.server._errors import CallError, Headers, error_body
from scopegen.server._executor import CALL_TIMING, Executor
from scopegen.server._jobs import JobBackend, JobTable, run_job
from scopegen.server._loader import LoadedInterface
from scopegen.server._loopwatch import LoopWatch
from scopegen.server._settings import ServerSettings
from scopegen.server._stream import respond as respond_stream
from scopegen.server._stream import stream_lines
from scopegen.server._tensors import TensorPolicy
from scopegen.server._validate import build_validator, error_details

__all__ = ["ScopegenApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# The executor's ``run_sync`` / ``run_async``: (name, fn, kwargs) -> result.
Runner = Callable[[str, Callable[..., Any], dict[str, Any]], Awaitable[Any]]

_CALL_PREFIX = protocol.CALL_PREFIX
_CALL_PREFIX_LEN = len(_CALL_PREFIX)
_JOBS_PREFIX = protocol.JOBS_PREFIX
_JOBS_PREFIX_LEN = len(_JOBS_PREFIX)
_HEALTH_PATH = protocol.HEALTH_PATH
_JSON = (b"content-type", b"application/json")
_AUTHORIZATION = protocol.AUTHORIZATION_HEADER.encode()
_REQUEST_ID = protocol.REQUEST_ID_HEADER.encode()
_INTERFACE_HASH = protocol.INTERFACE_HASH_HEADER.encode()
_SERVER_TIMING = protocol.SERVER_TIMING_HEADER.encode()
_REQUEST_ID_OK = re.compile(protocol.REQUEST_ID_PATTERN.encode())
_ALLOW = protocol.ALLOW_HEADER.encode()
_ALLOW_GET: Headers = ((_ALLOW, b"GET"),)
_ALLOW_POST: Headers = ((_ALLOW, b"POST"),)
_ALLOW_JOB: Headers = ((_ALLOW, b"GET, DELETE"),)
_BEARER: Headers = ((protocol.WWW_AUTHENTICATE_HEADER.encode(), b"Bearer"),)
_UNAUTHORIZED_MESSAGE = "missing or wrong 'Authorization: Bearer <token>' header"


def _status(code: str) -> int:
    return protocol.ERROR_BY_CODE[code].status


_NOT_FOUND = error_body("not_found", "no such route; calls are POST /v1/call/{function}")
_UNAUTHORIZED = error_body("unauthorized", _UNAUTHORIZED_MESSAGE)
_GET_ONLY = error_body("method_not_allowed", "this route only answers GET")
_HEALTH = orjson.dumps({"status": "ok"})


class _ClientGone(Exception):
    """The client disconnected before its request body arrived: nothing to answer."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    name: str
    fn: Callable[..., Any]
    validator: SchemaValidator
    run: Runner
    is_async: bool = False
    streams: bool = False  # ``-> Iterator[T]`` and kin: answered by ``_stream``
    # Set when arguments or the result may carry tensors (``_tensors.py``).
    tensors: TensorPolicy | None = None

    @property
    def result_tensors(self) -> bool:
        """Results (a stream's items, a job's result) may hold tensors: their JSON form."""
        return self.tensors is not None and self.tensors.result_tensors


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


class ScopegenApp:
    """ASGI callable serving one loaded interface."""

    def __init__(self, loaded: LoadedInterface, settings: ServerSettings) -> None:
        self.settings = settings
        self._executor = Executor(
            settings.max_concurrency,
            settings.call_timeout,
            hide_tracebacks=settings.hide_tracebacks,
        )
        self._token = f"Bearer {settings.token}".encode() if settings.token else None
        self._max_body = settings.max_body
        self._log = _AccessLog(settings.log_stream) if settings.access_log else None
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex().encode() + b"-"
        # Lifespan hooks (starlette's shape): run on the event loop at start-up and
        # shutdown, e.g. the watcher of ``serve --reload``.
        self.on_startup: list[Callable[[asyncio.AbstractEventLoop], None]] = []
        self.on_shutdown: list[Callable[[], None]] = []
        if settings.block_warning:
            watch = LoopWatch(settings.block_warning, self._blocker, settings.log_stream)
            self.on_startup.append(watch.start)
            self.on_shutdown.append(watch.stop)
        # Run on the event loop each time every worker is stuck past its timeout
        # (the server is degraded: /healthz and sync calls answer 503).
        self.on_degraded: list[Callable[[], None]] = self._executor.on_all_stuck
        # Where jobs live: this process' table, or Modal's function calls (modal_runtime).
        self.jobs: JobBackend = JobTable(settings.job_ttl, settings.max_jobs, self.stream)
        self.loaded = loaded
        tables = self.prepare(loaded)
        # Exposed name -> endpoint, and GET routes: path -> pre-encoded body.
        self._endpoints: dict[str, _Endpoint] = tables.endpoints
        self._static: dict[str, bytes] = tables.static
        # On every answer, so a long-lived client learns of a new interface.
        self._hash: tuple[bytes, bytes] = (_INTERFACE_HASH, loaded.interface.hash.encode())

    def prepare(self, loaded: LoadedInterface) -> _Tables:
        """Build the routes of one version of the interface (validators, manifest, OpenAPI)."""
        interface = loaded.interface
        types = interface.type_map()
        namespace = vars(loaded.module)
        executor = self._executor
        endpoints: dict[str, _Endpoint] = {}
        for fn in interface.functions:
            obj = loaded.functions[fn.name]
            # The running object decides (a decorator may have changed it).
            is_async = inspect.iscoroutinefunction(obj)
            endpoints[fn.name] = _Endpoint(
                fn.name,
                obj,
                build_validator(fn, types, namespace),
                executor.run_async if is_async else executor.run_sync,
                # An async generator function is no coroutine function.
                is_async or inspect.isasyncgenfunction(obj),
                fn.streams,
                TensorPolicy.of(fn, types),
            )
        static = {
            protocol.FUNCTIONS_PATH: orjson.dumps(manifest(interface)),
            protocol.OPENAPI_PATH: orjson.dumps(openapi(interface, auth=self._token is not None)),
        }
        return _Tables(loaded, endpoints, static)

    def _blocker(self, frame: FrameType | None) -> str:
        """What blocks the loop, from its innermost frame: the exposed function and its line.

        Called by the loop watch's thread, only once the loop is already late.
        """
        codes: dict[CodeType, _Endpoint] = {}
        for endpoint in self._endpoints.values():
            code = getattr(inspect.unwrap(endpoint.fn), "__code__", None)
            if isinstance(code, CodeType):
                codes[code] = endpoint
        innermost = frame
        while frame is not None:
            ep = codes.get(frame.f_code)
            if ep is not None:
                kind = "async def" if ep.run == self._executor.run_async else "def"
                return f"{kind} {ep.name} at {_where(frame)}"
            frame = frame.f_back
        if innermost is None:
            return "code the server cannot see"
        return f"code outside the exposed functions, at {_where(innermost)}"

    def install(self, tables: _Tables) -> None:
        """Serve another version of the interface (``serve --reload``).

        Call it on the event loop's thread: each request then sees the old
        tables or the new ones, never a mix, with no lock on the call path.
        A call that already looked up its endpoint finishes on the old version.
        """
        self._endpoints = tables.endpoints
        self._static = tables.static
        self._hash = (_INTERFACE_HASH, tables.loaded.interface.hash.encode())
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
        self.jobs.close()
        self._executor.close()
        if self._log is not None:
            self._log.flush()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = perf_counter()
        path: str = scope["path"]
        if path == _HEALTH_PATH:
            await self._health(scope, send)
            return
        auth: bytes | None = None
        clen: bytes | None = None
        given: bytes | None = None
        authorization, request_id = _AUTHORIZATION, _REQUEST_ID  # locals: read per header
        for key, value in scope["headers"]:
            if key == authorization:
                auth = value
            elif key == b"content-length":
                clen = value
            elif key == request_id:
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
        if path.startswith(_JOBS_PREFIX):
            rest = path[_JOBS_PREFIX_LEN:]
            status = await self._job(rest, scope, receive, send, auth, clen, rid)
            if self._log is not None:
                shown = rest if rest in self._endpoints else repr(rest[:80])
                ms = (perf_counter() - t0) * 1000.0
                line = (
                    f"INFO:     job {scope['method']} {shown} {status} {ms:.2f}ms {rid.decode()}\n"
                )
                self._log.add(line)
            return
        if self._token is not None and not self._authorized(auth):
            status = _status("unauthorized")
            await self._answer(send, status, _UNAUTHORIZED, rid, _BEARER)
        elif (body := self._static.get(path)) is None:
            status = _status("not_found")
            await self._answer(send, status, _NOT_FOUND, rid)
        elif scope["method"] != "GET":
            status = _status("method_not_allowed")
            await self._answer(send, status, _GET_ONLY, rid, _ALLOW_GET)
        else:
            status = 200
            await self._answer(send, 200, body, rid)
        if self._log is not None:
            ms = (perf_counter() - t0) * 1000.0
            shown = f"{scope['method']} {path[:80]!r}"
            self._log.add(f"INFO:     {shown} {status} {ms:.2f}ms {rid.decode()}\n")

    async def _health(self, scope: Scope, send: Send) -> None:
        """``GET /healthz``: never needs a token; 503 "degraded" while every worker is stuck."""
        rid = self._request_id(scope["headers"])
        if scope["method"] != "GET":
            await self._answer(send, _status("method_not_allowed"), _GET_ONLY, rid, _ALLOW_GET)
        elif stuck := self._executor.stuck_workers():
            degraded = orjson.dumps({"status": "degraded", "stuck_calls": stuck})
            await self._answer(send, 503, degraded, rid)
        else:
            await self._answer(send, 200, _HEALTH, rid)

    async def _answer(
        self,
        send: Send,
        status: int,
        body: bytes,
        rid: bytes,
        headers: Headers = (),
        ctype: tuple[bytes, bytes] = _JSON,
    ) -> None:
        await _respond(send, status, body, rid, (self._hash, *headers), ctype)

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

    def _request_id(self, headers: Headers) -> bytes:
        for key, value in headers:
            if key == _REQUEST_ID and _REQUEST_ID_OK.fullmatch(value):
                return value
        return self._new_id()

    def _new_id(self) -> bytes:
        return b"%s%x" % (self._id_prefix, next(self._ids))

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
        try:
            if self._token is not None:
                self._authorize(auth)
            ep = self._endpoint(name, scope["method"])
            raw = await self._read_body(receive, clen)
            # Tensors: the JSON form, or the binary framing both ways (_tensors.py).
            tensors = ep.tensors
            data = _decode(raw) if tensors is None else tensors.decode(scope, raw, _decode)
            kwargs = _validate(ep, data, raw)
            ctype = _JSON
            if ep.streams:
                lines = self.stream(ep, kwargs)
            elif tensors is None:
                out = _encode(await ep.run(ep.name, ep.fn, kwargs))
            else:
                ctype, out = tensors.encode(scope, await ep.run(ep.name, ep.fn, kwargs))
        except CallError as err:
            await self._answer(send, err.status, err.body, rid, err.headers)
            return err.status
        except _ClientGone:
            return 0
        if ep.streams:
            # 200 and the lines as they come; a failure midway is an error line.
            sent = await respond_stream(send, receive, lines, rid, (self._hash,))
            return 200 if sent else 0
        queued, ran = CALL_TIMING.get((0.0, 0.0))
        timing = b"queue;dur=%.1f, run;dur=%.1f" % (queued * 1000.0, ran * 1000.0)
        await self._answer(send, 200, out, rid, ((_SERVER_TIMING, timing),), ctype)
        return 200

    async def _job(
        self,
        rest: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        auth: bytes | None,
        clen: bytes | None,
        rid: bytes,
    ) -> int:
        """``POST /v1/jobs/{function}``, ``GET`` / ``DELETE /v1/jobs/{id}``: the status sent."""
        method = scope["method"]
        try:
            if self._token is not None:
                self._authorize(auth)
            if method == "POST":
                # The call path's steps: nothing is queued unless the arguments are valid.
                ep = self._endpoint(rest, method)
                raw = await self._read_body(receive, clen)
                kwargs = _validate(ep, _decode(raw), raw)
                body = await self.jobs.submit(ep, kwargs, raw)
                status = 202
            elif method == "GET":
                body = await self.jobs.get(rest)
                status = 200
            elif method == "DELETE":
                body = await self.jobs.cancel(rest)
                status = 200
            else:
                # /v1/jobs/<function> is submitted to; /v1/jobs/<id> is read and cancelled.
                raise CallError(
                    "method_not_allowed",
                    "jobs are submitted with POST, read with GET and cancelled with DELETE",
                    _ALLOW_POST if rest in self._endpoints else _ALLOW_JOB,
                )
        except CallError as err:
            await self._answer(send, err.status, err.body, rid, err.headers)
            return err.status
        except _ClientGone:
            return 0
        await self._answer(send, status, body, rid)
        return status

    async def run_job(self, name: str, raw: bytes) -> bytes:
        """Run one job of ``name`` with the arguments ``raw`` here, to its end (Modal's calls).

        The arguments were checked when the job was submitted; they are
        checked again, as the interface here may differ.
        """
        try:
            ep = self._endpoint(name, "POST")
            kwargs = _validate(ep, _decode(raw), raw)
        except CallError as err:
            return b'{"status":"failed","error":' + err.body[len(b'{"error":') :]
        return await run_job(ep, kwargs, self.stream)

    def stream(self, ep: _Endpoint, kwargs: dict[str, Any]) -> AsyncIterator[list[bytes]]:
        """Start a streaming call: its lines, as they are produced (``_stream``)."""
        return stream_lines(
            self._executor,
            ep.name,
            ep.fn,
            kwargs,
            is_async=ep.is_async,
            call_timeout=self.settings.call_timeout,
            item_timeout=self.settings.item_timeout,
            tensors=ep.result_tensors,
        )

    def _authorize(self, auth: bytes | None) -> None:
        if not self._authorized(auth):
            raise CallError("unauthorized", _UNAUTHORIZED_MESSAGE, _BEARER)

    def _endpoint(self, name: str, method: str) -> _Endpoint:
        ep = self._endpoints.get(name)
        if ep is None:
            raise CallError("unknown_function", f"no exposed function named {name[:200]!r}")
        if method != "POST":
            raise CallError("method_not_allowed", "this route only answers POST", _ALLOW_POST)
        return ep

    async def _read_body(self, receive: Receive, clen: bytes | None) -> bytes:
        """The request body, refused past the limit: on the declared length before reading."""
        limit = self._max_body
        if clen is not None and clen.isdigit() and int(clen) > limit:
            raise self._too_large()
        message = await receive()
        raw: bytes = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [raw]
            size = len(raw)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise self._too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            raw = b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise _ClientGone
        if len(raw) > limit:
            raise self._too_large()
        return raw

    def _too_large(self) -> CallError:
        return CallError(
            "payload_too_large", f"the body is over the server's limit of {self._max_body} bytes"
        )


def _decode(raw: bytes) -> Any:
    """The arguments object of a request body (an empty body means no arguments)."""
    if not raw:
        return {}
    try:
        # orjson refuses NaN, Infinity, numbers that overflow a double
        # (1e400) and lone surrogates: what JSON cannot carry back.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # A huge integer literal is valid JSON that orjson cannot hold.
        data = loads_exact(raw)
        if data is INVALID:
            raise CallError("bad_request", f"the body is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise CallError(
            "bad_request", f"the body must be a JSON object of arguments, not {_json_type(data)}"
        )
    return data


def _validate(ep: _Endpoint, data: Any, raw: bytes) -> dict[str, Any]:
    try:
        kwargs: dict[str, Any] = ep.validator.validate_python(data)
        return kwargs
    except ValidationError as exc:
        # orjson reads integers past 64 bits as floats; an exact re-read may
        # make the arguments valid (only ever on this failing path).
        retried = _validate_exact(ep.validator, raw) if raw else None
        if retried is not None:
            return retried
        # The input is read for its type only (error_details: "got int"), on this error path.
        errors = exc.errors(include_url=False, include_context=False, include_input=True)
        raise CallError(
            "invalid_arguments",
            f"invalid arguments for {ep.name}: {len(errors)} error(s)",
            details=error_details(errors),
        ) from None


def _validate_exact(validator: SchemaValidator, raw: bytes) -> dict[str, Any] | None:
    data = loads_exact(raw)
    if data is INVALID:
        return None
    try:
        kwargs: dict[str, Any] = validator.validate_python(data)
    except ValidationError:
        return None
    return kwargs


def _encode(result: Any) -> bytes:
    return encode("result", result)


def _where(frame: FrameType) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


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
    headers: Headers = (),
    ctype: tuple[bytes, bytes] = _JSON,
) -> None:
    head = [ctype, (b"content-length", b"%d" % len(body)), (_REQUEST_ID, rid)]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
