"""JSON in and out: orjson on the hot path, exact slow paths and precise diagnoses.

Requests are parsed by orjson, which refuses what JSON cannot carry back
(NaN, Infinity, numbers overflowing a double, lone surrogates) but reads
integers past 64 bits as floats; ``loads_exact`` (pydantic-core's parser)
re-reads a body exactly when that matters. Results:

orjson natively writes dicts, lists, tuples, str/int/float/bool/None,
dataclass instances, Enum members and (with ``OPT_SERIALIZE_NUMPY``) numpy
arrays and scalars; pydantic models go through ``model_dump``. Anything else
is an ``unserializable_result`` whose message names the offending path and
type and says how to fix it, e.g. ``result["embedding"] is torch.Tensor;
return .tolist()``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any

import orjson
from pydantic_core import from_json

from scopegen.server._errors import CallError

__all__ = [
    "INVALID",
    "OPTIONS",
    "default",
    "describe_unserializable",
    "dumps_fallback",
    "encode",
    "loads_exact",
]

# ``loads_exact``'s answer for a body the server refuses.
INVALID: Any = object()

OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def default(obj: Any) -> Any:
    """orjson's fallback: only called for types it does not handle itself."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None and hasattr(type(obj), "model_fields"):
        return dump(mode="json")
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        # Arrays orjson declines (non-contiguous, object or float16 dtype).
        return obj.tolist()
    raise TypeError


def encode(key: str, value: Any, *, tensors: bool = False) -> bytes:
    """``{key: value}`` as JSON: a call's ``result``, a stream's ``item``, a job's result.

    The one place a value the function produced becomes wire bytes, so every
    route encodes alike. Raises ``CallError("unserializable_result")`` naming
    the offending part.
    """
    encoder: Any = default
    option = OPTIONS
    if tensors:
        # Tensors as their JSON form (docs/protocol.md "Tensors"); streams and jobs are JSON.
        from scopegen.server._tensors import json_tensor_default

        # Without OPT_SERIALIZE_NUMPY, so that numpy arrays reach the encoder.
        encoder, option = json_tensor_default(default), 0
    try:
        return orjson.dumps({key: value}, default=encoder, option=option)
    except TypeError as exc:
        message = getattr(encoder, "error", None)  # a tensor that cannot cross the wire
        if message is None:
            fallback = dumps_fallback(value, key)
            if fallback is not None:
                return fallback
            message = describe_unserializable(value, exc, key)
        raise CallError("unserializable_result", message) from None


def loads_exact(raw: bytes) -> Any:
    """Parse ``raw`` keeping every integer exact; ``INVALID`` unless it is JSON we accept.

    The slow path, taken only when orjson refused a body (a 400-digit integer
    is valid JSON that orjson cannot hold) or its floats for big integers
    failed validation. Numbers that overflow a double are still refused.
    """
    try:
        data = from_json(raw, allow_inf_nan=False)
    except ValueError:
        return INVALID
    stack = [data]
    while stack:
        item = stack.pop()
        if type(item) is float and not math.isfinite(item):
            return INVALID
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return data


def dumps_fallback(result: Any, key: str = "result") -> bytes | None:
    """Encode ``{key: result}`` orjson refused when only integers past 64 bits stopped it."""
    if _find(result, key, 0, set(), big_ints=True) is not None:
        return None
    try:
        text = json.dumps(
            {key: result},
            default=_std_default,
            allow_nan=False,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return text.encode()
    except (TypeError, ValueError):
        return None


def _std_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    return default(obj)


_MAX_DEPTH = 254  # orjson's own recursion limit is 255


def describe_unserializable(value: Any, exc: Exception | None = None, key: str = "result") -> str:
    """Say where in ``value`` the first non-JSON part is, what it is and how to fix it."""
    found = _find(value, key, 0, set())
    if found is not None:
        return found
    return f"the {key} could not be encoded as JSON: {exc}" if exc else f"the {key} is not JSON"


def _find(
    value: Any, path: str, depth: int, active: set[int], *, big_ints: bool = False
) -> str | None:
    t = type(value)
    if value is None or t in (bool, float):
        return None
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return f"{path} is a str with lone surrogates, which JSON cannot carry"
        return None
    if t is int or (isinstance(value, int) and not isinstance(value, enum.Enum)):
        if not big_ints and not -(2**63) <= value < 2**64:
            return f"{path} is an integer too large for JSON (over 64 bits); return it as a str"
        return None
    if depth > _MAX_DEPTH:
        return f"{path} is nested too deeply for JSON (over {_MAX_DEPTH} levels)"
    if isinstance(value, (dict, list, tuple)) or dataclasses.is_dataclass(value):
        if id(value) in active:
            return f"{path} contains itself (a circular reference)"
        active.add(id(value))
        try:
            return _find_children(value, path, depth, active, big_ints)
        finally:
            active.discard(id(value))
    if isinstance(value, enum.Enum):
        return _find(value.value, f"{path}.value", depth + 1, active, big_ints=big_ints)
    if isinstance(value, float):
        return None
    if hasattr(value, "model_dump") and hasattr(t, "model_fields"):
        try:
            value.model_dump(mode="json")
        except Exception as exc:
            return f"{path} ({_type_name(t)}) cannot be dumped to JSON: {exc}"
        return None
    if t.__module__ == "numpy":
        try:
            orjson.dumps(value, default=default, option=OPTIONS)
        except TypeError:
            pass
        else:
            return None
    return f"{path} is {_type_name(t)}; {_hint(value)}"


def _find_children(
    value: Any, path: str, depth: int, active: set[int], big_ints: bool
) -> str | None:
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str:
                return (
                    f"{path} has a key {k!r} of type {_type_name(type(k))}; "
                    "JSON object keys must be str"
                )
            key = json.dumps(k, ensure_ascii=False)
            found = _find(v, f"{path}[{key}]", depth + 1, active, big_ints=big_ints)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find(v, f"{path}[{i}]", depth + 1, active, big_ints=big_ints)
            if found:
                return found
        return None
    for f in dataclasses.fields(value):
        item = getattr(value, f.name, None)
        found = _find(item, f"{path}.{f.name}", depth + 1, active, big_ints=big_ints)
        if found:
            return found
    return None


def _type_name(t: type) -> str:
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _hint(value: Any) -> str:
    if hasattr(value, "tolist"):
        return "return .tolist()"
    if hasattr(value, "item"):
        return "return .item()"
    if isinstance(value, (set, frozenset)):
        return "return a list (e.g. sorted(...))"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "return a str (decode it, or base64-encode binary data)"
    if isinstance(value, complex):
        return "return [z.real, z.imag]"
    if hasattr(value, "__next__") or hasattr(value, "__aiter__"):
        return "return a list, not an iterator"
    if hasattr(value, "__iter__"):
        return "return list(...)"
    return "return only JSON types (dict, list, str, int, float, bool, None)"
