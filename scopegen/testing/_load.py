"""``scopegen.testing.load``: an interface file served in this process, called like a remote one.

The file is loaded by the server's own factory (``scopegen.server.create_app``:
lint, execute with the injected globals, reconcile) and every call is an
HTTP request handed to that ASGI app in memory (``_asgi.Driver``): the same
argument validation, result encoding, error table and streaming as a caller
of ``scopegen serve`` gets, without a socket. Arguments are encoded to JSON
as a client would send them, results decoded from the JSON the app wrote.

Loading changes this process the way serving does (``sys.modules``,
``sys.path``, where ``get_model_path`` looks); ``close`` puts all of it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import sys
from collections import Counter
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, cast

import orjson
from pydantic_core import from_json

from scopegen import protocol, runtime
from scopegen.server import DEFAULT_MAX_BODY, ScopegenApp, ServerSettings, create_app
from scopegen.server._encode import OPTIONS, default
from scopegen.server._tensors import (
    TensorPolicy,
    decode_tensors,
    is_tensor,
    json_tensor_default,
    mentions,
)
from scopegen.testing._asgi import Driver, Response

__all__ = ["CallError", "Interface", "Stream", "load"]

# What a streaming function answers (docs/protocol.md, "Streaming results").
STREAM_MEDIA_TYPE = protocol.NDJSON_MEDIA_TYPE


class CallError(Exception):
    """An error answer of the protocol (``docs/protocol.md``, "Errors").

    ``code`` is the protocol's error code (``invalid_arguments``,
    ``unknown_function``, ``function_error``, ...), ``status`` its HTTP
    status; ``details`` (validation errors), ``type`` and ``traceback`` (the
    function's exception) are there when the answer carries them. ``error``
    is the whole error object as sent.
    """

    def __init__(
        self, status: int, error: Mapping[str, Any], request_id: str | None = None
    ) -> None:
        self.status = status
        self.error = dict(error)
        self.code: str = str(error.get("code", ""))
        self.message: str = str(error.get("message", ""))
        self.details: list[dict[str, Any]] | None = error.get("details")
        self.type: str | None = error.get("type")
        self.traceback: str | None = error.get("traceback")
        self.request_id = request_id
        super().__init__(self.code, self.message)

    def __str__(self) -> str:
        lines = [f"{self.code} ({self.status}): {self.message}"]
        for d in self.details or ():
            loc = ".".join(str(part) for part in d.get("loc", ())) or "(arguments)"
            lines.append(f"  {loc}: {d.get('msg', '')} [{d.get('type', '')}]")
        if self.traceback:
            lines.append(self.traceback.rstrip())
        return "\n".join(lines)


class Stream:
    """The items of a streaming function's answer, decoded as they arrive.

    Iterating ends at the stream's ``{"done": true}``; an ``{"error": ...}``
    line raises ``CallError``. ``close`` (or leaving a ``with`` block) stops
    early: the server sees the client go away and stops the generator.
    """

    def __init__(self, response: Response) -> None:
        self._response = response
        self._items = self._decode()

    def _decode(self) -> Generator[Any, None, None]:
        pending = b""
        request_id = self._response.headers.get(protocol.REQUEST_ID_HEADER)
        for chunk in self._response.iter_bytes():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                message = from_json(line)
                if "item" in message:
                    yield message["item"]
                elif "error" in message:
                    error = message["error"]
                    row = protocol.ERROR_BY_CODE.get(error.get("code", ""))
                    status = row.status if row is not None else self._response.status
                    raise CallError(status, error, request_id)
                elif message.get("done") is True:
                    return
        raise RuntimeError("the stream ended without its closing {'done': true} line")

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    def close(self) -> None:
        self._items.close()
        self._response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Interface:
    """A loaded interface file: its manifest and its functions, called through the server's code.

    ``iface.call("name", ...)`` and ``iface.name(...)`` send one call;
    arguments are named, or positional in the declared order (as in the
    generated client). The result is what the server's JSON carries; an error
    answer raises ``CallError``. A function whose name is an attribute of this
    class (``call``, ``functions``, ...) is reached through ``call``.
    """

    def __init__(self, app: ScopegenApp, restore: _Restore) -> None:
        self._app = app
        self._restore = restore
        self._driver: Driver | None = Driver(app)
        try:
            r = self.request("GET", protocol.FUNCTIONS_PATH)
            self.manifest: dict[str, Any] = from_json(r.read())
        except BaseException:
            self._driver.close()
            raise
        self.functions: list[dict[str, Any]] = self.manifest["functions"]
        self._names = frozenset(f["name"] for f in self.functions)
        # Tensors: arguments in their JSON form when a parameter is one, results decoded
        # wherever one may be (a tensor type, or ``Any`` / bare containers).
        iface, types = app.loaded.interface, app.loaded.interface.type_map()
        self._tensor_args = any(
            mentions(p.type, types, is_tensor) for fn in iface.functions for p in fn.params
        )
        self._tensors = any(TensorPolicy.of(fn, types) is not None for fn in iface.functions)
        self._positional = {
            fn.name: tuple(p.name for p in fn.params if p.kind == "positional_or_keyword")
            for fn in app.loaded.interface.functions
        }

    @property
    def path(self) -> Path:
        """The interface file."""
        return self._app.loaded.path

    @property
    def module(self) -> ModuleType:
        """The module the file ran as (its globals: the model, helpers, ...)."""
        return self._app.loaded.module

    def call(self, function: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``function`` as ``POST /v1/call/{function}`` would; return its result.

        A streaming function returns a ``Stream`` of its items.
        """
        __tracebackhide__ = True  # pytest: the failure points at the test's call
        if args:
            kwargs = self._name_positionals(function, args, kwargs)
        tensors = self._tensors
        body = _encode_args(kwargs, self._tensor_args)
        r = self.request("POST", protocol.CALL_PREFIX + function, content=body)
        if r.status == 200:
            if r.headers.get("content-type") == STREAM_MEDIA_TYPE:
                return Stream(r)
            result = from_json(r.read())["result"]
            # Tensors come back as numpy arrays, as the generated client returns them.
            return decode_tensors(result) if tensors else result
        raise _error(r)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A raw request to the app (any route, e.g. jobs); the body is read from the answer."""
        if self._driver is None:
            raise RuntimeError(f"{self!r} is closed")
        body = content if content is not None else b"" if json is None else _encode_args(json)
        head = [("content-type", "application/json")] if body else []
        head += list((headers or {}).items())
        return self._driver.request(method, path, body, head)

    def close(self) -> None:
        """Shut the app down and put back what loading changed in this process."""
        driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            driver.close()
        finally:
            self._restore()

    def __enter__(self) -> Interface:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        names: frozenset[str] = self.__dict__.get("_names", frozenset())
        if name not in names:
            exposed = ", ".join(sorted(names)) or "none"
            raise AttributeError(f"{name!r} is not an exposed function (exposed: {exposed})")

        def function(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            return self.call(name, *args, **kwargs)

        function.__name__ = function.__qualname__ = name
        function.__doc__ = next((f.get("doc") for f in self.functions if f["name"] == name), None)
        return function

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._names})

    def __repr__(self) -> str:
        state = "closed" if self._driver is None else f"{len(self.functions)} functions"
        return f"<scopegen.testing.Interface {self.manifest['name']!r} ({state})>"

    def _name_positionals(
        self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        names = self._positional.get(function)
        if names is None:
            # Not exposed: the server answers unknown_function; positionals have no names.
            return {f"${i}": a for i, a in enumerate(args)} | kwargs
        if len(args) > len(names):
            raise TypeError(
                f"{function}() takes {len(names)} positional argument(s) but {len(args)} were given"
            )
        named = dict(zip(names, args, strict=False))
        for key in named.keys() & kwargs.keys():
            raise TypeError(f"{function}() got multiple values for argument {key!r}")
        return named | kwargs


# Folder -> open loads that share its sys.path entry (put there by one of them).
_FOLDERS: Counter[str] = Counter()


class _Restore:
    """What loading an interface changes in this process, and how to put it back.

    Loads may overlap (a session-wide one and a test's own): each puts back
    only what is still its own, so closing them in any order works.
    """

    def __init__(self, path: Path) -> None:
        self.folder = path.resolve().parent
        self.modules = dict(sys.modules)
        self.paths = runtime.model_paths()
        folder = str(self.folder)
        self.shares_folder = folder not in sys.path or _FOLDERS[folder] > 0
        self.installed: dict[str, ModuleType] = {}
        self.installed_paths: runtime.ModelPaths | None = None

    def loaded(self) -> None:
        """Note what the load put in place (called once it succeeded)."""
        if self.shares_folder:
            _FOLDERS[str(self.folder)] += 1
        self.installed = {
            name: module
            for name, module in sys.modules.items()
            if self.modules.get(name) is not module and self._from_folder(module)
        }
        self.installed_paths = runtime.model_paths()

    def __call__(self) -> None:
        # Modules from the interface's folder (the file itself, its helpers) go,
        # so the next load runs them afresh; those they replaced come back.
        for name, module in list(sys.modules.items()):
            mine = self.installed.get(name)
            if mine is None:
                # Imported later, by a call: ours unless it was there before.
                if name in self.modules or not self._from_folder(module):
                    continue
            elif mine is not module:
                continue  # a later load's, which puts it back itself
            if name in self.modules:
                sys.modules[name] = self.modules[name]
            else:
                del sys.modules[name]
        folder = str(self.folder)
        if self.shares_folder and self.installed_paths is not None:
            _FOLDERS[folder] -= 1
        if self.shares_folder and _FOLDERS[folder] <= 0:
            del _FOLDERS[folder]
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        current = runtime.model_paths()
        if self.installed_paths is None or current is self.installed_paths:
            runtime.configure_model_paths(self.paths)

    def _from_folder(self, module: ModuleType) -> bool:
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            return False
        try:
            return Path(file).resolve().is_relative_to(self.folder)
        except (OSError, ValueError):
            return False


def load(
    path: str | os.PathLike[str],
    *,
    models: Mapping[str, str | os.PathLike[str]] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    use_hf_cache: bool = True,
    name: str | None = None,
    call_timeout: float | None = None,
    block_warning: float = 0.5,
    max_concurrency: int = 1,
    max_body: int = DEFAULT_MAX_BODY,
    hide_tracebacks: bool = False,
) -> Interface:
    """Load ``path`` in this process, as ``scopegen serve`` would, and return a handle to call it.

    ``models`` (model id -> local folder) and ``models_dir`` are where
    ``get_model_path`` looks, as ``serve --model`` and ``--models-dir``;
    the other options are ``scopegen serve``'s. Use it as a context manager
    (or call ``close``) to shut it down and undo what loading did to the
    process. Raises what the server refuses to start on:
    ``scopegen.server.InterfaceLintError`` (nothing was imported),
    ``InterfaceImportError`` (the file raised; ``traceback_text`` says where)
    or ``InterfaceMismatchError``.
    """
    settings = ServerSettings(
        token=None,
        access_log=False,
        models={k: os.fspath(v) for k, v in (models or {}).items()},
        models_dir=os.fspath(models_dir) if models_dir is not None else None,
        use_hf_cache=use_hf_cache,
        name=name,
        call_timeout=call_timeout,
        block_warning=block_warning,
        max_concurrency=max_concurrency,
        max_body=max_body,
        hide_tracebacks=hide_tracebacks,
    )
    restore = _Restore(Path(path))
    try:
        app = create_app(Path(path), settings)
    except BaseException:
        restore()
        raise
    restore.loaded()
    try:
        return Interface(app, restore)
    except BaseException:
        app.close()
        restore()
        raise


def _error(r: Response) -> CallError:
    raw = r.read()
    request_id = r.headers.get(protocol.REQUEST_ID_HEADER)
    try:
        error = from_json(raw)["error"]
    except (ValueError, KeyError, TypeError):
        error = {"code": "", "message": raw.decode("utf-8", "replace")}
    return CallError(r.status, cast(Mapping[str, Any], error), request_id)


def _encode_args(value: Any, tensors: bool = False) -> bytes:
    """Arguments as JSON, the way a client writes them (the server's own encoder)."""
    try:
        if tensors:
            # numpy arrays and torch tensors in the JSON form, not as lists.
            return orjson.dumps(value, default=json_tensor_default(default))
        return orjson.dumps(value, default=default, option=OPTIONS)
    except TypeError:
        # Integers past 64 bits, which JSON carries and orjson does not.
        return json.dumps(value, default=_exact_default, allow_nan=False).encode()


def _exact_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    return default(obj)
