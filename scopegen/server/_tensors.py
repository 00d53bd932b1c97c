"""Tensors on the wire, server side: the JSON form and the binary framing (docs/protocol.md).

Decoding builds exactly the kind an annotation names (``torch.Tensor`` or
``numpy.ndarray``); encoding takes torch tensors (detached, moved to the CPU
and made contiguous only when they are not already) and numpy arrays, wherever
they sit in a result. numpy and torch are imported lazily, on the first tensor:
an interface without tensors never loads them through this module.

A header that lies is refused before anything is allocated: the byte count a
dtype and shape imply is checked against the bytes that are actually there
(the base64 text's length, or the buffer section of a binary body), so no
tensor larger than the request body is ever built.
"""

from __future__ import annotations

import binascii
import struct
import sys
from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticCustomError
from pydantic_core import core_schema as cs

from scopegen import protocol
from scopegen.spec import (
    AnyType,
    DictType,
    ListType,
    RefType,
    TensorType,
    TupleType,
    TypeDef,
    UnionType,
    WireType,
)

__all__ = [
    "RawTensor",
    "TensorEncoder",
    "TensorError",
    "TensorPolicy",
    "decode_tensors",
    "encode_binary",
    "is_tensor",
    "json_tensor_default",
    "may_hold_tensors",
    "mentions",
    "parse_binary",
    "tensor_schema",
]

_KEY = protocol.TENSOR_KEY
_ITEMSIZE = protocol.TENSOR_DTYPES
_MAX_DIM = 2**63 - 1
_HEAD = struct.Struct("<4sI")


class TensorError(ValueError):
    """A binary body whose framing is broken (the app answers 400)."""


# --------------------------------------------------------------------------- IR queries


def mentions(
    t: WireType | None, types: dict[str, TypeDef], want: Callable[[WireType | None], bool]
) -> bool:
    """Does ``want`` hold somewhere in ``t`` (through named types)?"""
    seen: set[str] = set()
    stack: list[WireType | None] = [t]
    while stack:
        item = stack.pop()
        if want(item):
            return True
        if isinstance(item, ListType):
            stack.append(item.item)
        elif isinstance(item, DictType):
            stack.append(item.value)
        elif isinstance(item, (TupleType, UnionType)):
            stack.extend(item.items if isinstance(item, TupleType) else item.options)
        elif isinstance(item, RefType) and item.name not in seen:
            seen.add(item.name)
            td = types.get(item.name)
            stack.extend(f.type for f in getattr(td, "fields", ()))
    return False


def is_tensor(t: WireType | None) -> bool:
    return isinstance(t, TensorType)


def may_hold_tensors(t: WireType | None) -> bool:
    """A tensor type, or a place a runtime tensor may hide (``Any``, bare ``list``/``dict``)."""
    return t is None or isinstance(t, (TensorType, AnyType))


# --------------------------------------------------------------------------- decoding


class RawTensor:
    """A tensor header of a binary body, with the buffer section it points into."""

    __slots__ = ("buffers", "header")

    def __init__(self, header: Any, buffers: memoryview) -> None:
        self.header = header
        self.buffers = buffers


def parse_binary(body: bytes) -> Any:
    """A binary body -> its envelope, each tensor header a ``RawTensor``."""
    import orjson

    if len(body) < _HEAD.size:
        raise TensorError("the body is shorter than the binary framing's header")
    magic, n = _HEAD.unpack_from(body)
    if magic != protocol.TENSOR_MAGIC:
        raise TensorError(f"the body does not start with {protocol.TENSOR_MAGIC!r}")
    end = _HEAD.size + n
    if end > len(body):
        raise TensorError("the envelope's length runs past the end of the body")
    start = -(-end // protocol.TENSOR_ALIGN) * protocol.TENSOR_ALIGN
    view = memoryview(body)
    try:
        envelope = orjson.loads(view[_HEAD.size : end])
    except orjson.JSONDecodeError as exc:
        raise TensorError(f"the envelope is not valid JSON: {exc}") from None
    buffers = view[min(start, len(body)) :]
    return _attach(envelope, buffers)


def _attach(value: Any, buffers: memoryview) -> Any:
    if type(value) is dict:
        if len(value) == 1 and _KEY in value:
            header = value[_KEY]
            if type(header) is dict and "data" not in header:
                return RawTensor(header, buffers)
        return {k: _attach(v, buffers) for k, v in value.items()}
    if type(value) is list:
        return [_attach(v, buffers) for v in value]
    return value


def tensor_schema(t: TensorType) -> cs.CoreSchema:
    """A pydantic-core validator: the JSON form (or a ``RawTensor``) -> the annotated kind."""
    allowed = (t.dtype,) if t.dtype is not None else tuple(_ITEMSIZE)
    kind = t.kind

    def decode(value: Any) -> Any:
        data: bytes | memoryview
        if isinstance(value, RawTensor):
            dtype, shape, data = _raw(value, allowed)
        else:
            dtype, shape, data = _json_form(value, allowed)
        return _build(kind, dtype, shape, data)

    return cs.no_info_plain_validator_function(decode)


def _bad(message: str) -> PydanticCustomError:
    return PydanticCustomError("tensor_invalid", "Invalid tensor: {reason}", {"reason": message})


def _header(value: Any, allowed: tuple[str, ...], keys: frozenset[str]) -> tuple[str, list[int]]:
    if type(value) is not dict or set(value) != keys:
        raise _bad(f"expected an object with exactly the keys {sorted(keys)}")
    dtype = value["dtype"]
    if type(dtype) is not str or dtype not in allowed:
        shown = dtype if type(dtype) is str and len(dtype) <= 40 else type(dtype).__name__
        raise _bad(f"dtype {shown!r} is not one of {', '.join(allowed)}")
    shape = value["shape"]
    if type(shape) is not list or len(shape) > protocol.TENSOR_MAX_NDIM:
        raise _bad(f"shape must be a list of at most {protocol.TENSOR_MAX_NDIM} dimensions")
    for d in shape:
        if type(d) is not int or d < 0 or d > _MAX_DIM:
            raise _bad("every dimension of shape must be an integer from 0 to 2**63-1")
    return dtype, shape


_JSON_KEYS = frozenset({"dtype", "shape", "data"})
_RAW_KEYS = frozenset({"dtype", "shape", "offset", "nbytes"})


def _nbytes(dtype: str, shape: list[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count * _ITEMSIZE[dtype]


def _json_form(value: Any, allowed: tuple[str, ...]) -> tuple[str, list[int], bytes]:
    if type(value) is not dict or set(value) != {_KEY}:
        raise _bad(f'expected {{"{_KEY}": {{"dtype", "shape", "data"}}}}')
    inner = value[_KEY]
    dtype, shape = _header(inner, allowed, _JSON_KEYS)
    text = inner["data"]
    if type(text) is not str:
        raise _bad("data must be a base64 string")
    want = _nbytes(dtype, shape)
    # The length base64 text of ``want`` bytes has: checked before decoding anything.
    if len(text) != -(-want // 3) * 4:
        raise _bad(f"data does not hold {want} bytes (dtype {dtype}, shape {shape})")
    try:
        data = _b64decode(text)
    except ValueError:
        raise _bad("data is not valid base64") from None
    if len(data) != want:
        raise _bad(f"data does not hold {want} bytes (dtype {dtype}, shape {shape})")
    return dtype, shape, data


def _b64decode(text: str) -> bytes:
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(text, strict_mode=True)
    import base64

    return base64.b64decode(text, validate=True)


def _raw(value: RawTensor, allowed: tuple[str, ...]) -> tuple[str, list[int], memoryview]:
    dtype, shape = _header(value.header, allowed, _RAW_KEYS)
    offset, nbytes = value.header["offset"], value.header["nbytes"]
    if type(offset) is not int or type(nbytes) is not int or offset < 0 or nbytes < 0:
        raise _bad("offset and nbytes must be non-negative integers")
    want = _nbytes(dtype, shape)
    if nbytes != want:
        raise _bad(f"nbytes is {nbytes}, but dtype {dtype} and shape {shape} need {want}")
    if offset + nbytes > len(value.buffers):
        raise _bad("the buffer runs past the end of the body")
    return dtype, shape, value.buffers[offset : offset + nbytes]


def _build(kind: str, dtype: str, shape: list[int], data: bytes | memoryview) -> Any:
    np = _numpy()
    # A private, writable copy: the function may write into its argument.
    arr = np.frombuffer(data, dtype=_np_dtype(dtype) if kind == "numpy" else _carrier(dtype))
    try:
        arr = arr.reshape(shape).copy()
    except ValueError as exc:
        raise _bad(f"shape {shape} cannot be built: {exc}") from None
    if kind == "numpy":
        return arr
    import torch

    out = torch.from_numpy(arr)
    return out.view(torch.bfloat16) if dtype == "bfloat16" else out


def _numpy() -> Any:
    import numpy

    return numpy


def _np_dtype(dtype: str) -> Any:
    if dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise _bad("bfloat16 numpy arrays need the ml_dtypes package on the server") from None
        return ml_dtypes.bfloat16
    return _numpy().dtype(_NP_CODES[dtype])


def _carrier(dtype: str) -> Any:
    # torch builds bfloat16 from int16 bits; numpy needs no ml_dtypes for that.
    return _numpy().dtype("<i2") if dtype == "bfloat16" else _np_dtype(dtype)


_NP_CODES = {
    "bool": "?",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "float16": "<f2",
    "float32": "<f4",
    "float64": "<f8",
}


# --------------------------------------------------------------------------- encoding


def _is_tensor(obj: Any) -> str | None:
    mod = type(obj).__module__
    if mod == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        return "torch"
    if mod.startswith("torch") and hasattr(obj, "detach") and hasattr(obj, "untyped_storage"):
        return "torch"
    if mod == "numpy" and type(obj).__name__ == "ndarray":
        return "numpy"
    return None


class TensorEncoder:
    """orjson's ``default`` for results that may hold tensors; one per response.

    ``binary`` collects the buffers for the binary framing (no copy of
    contiguous CPU data); otherwise a tensor becomes the JSON form.
    """

    def __init__(self, binary: bool, fallback: Callable[[Any], Any]) -> None:
        self.binary = binary
        self.buffers: list[memoryview] = []
        self.size = 0
        self.error: str | None = None
        self._fallback = fallback

    def __call__(self, obj: Any) -> Any:
        kind = _is_tensor(obj)
        if kind is None:
            if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
                return obj.item()  # a numpy scalar
            return self._fallback(obj)
        dtype, shape, data = self._bytes(obj, kind)
        if not self.binary:
            return {_KEY: {"dtype": dtype, "shape": shape, "data": _b64(data)}}
        offset = -(-self.size // protocol.TENSOR_ALIGN) * protocol.TENSOR_ALIGN
        if offset > self.size:
            self.buffers.append(memoryview(bytes(offset - self.size)))
        self.buffers.append(data)
        self.size = offset + data.nbytes
        return {_KEY: {"dtype": dtype, "shape": shape, "offset": offset, "nbytes": data.nbytes}}

    def _bytes(self, obj: Any, kind: str) -> tuple[str, list[int], memoryview]:
        if kind == "torch":
            t = obj.detach()
            if t.device.type != "cpu":
                t = t.cpu()
            if not t.is_contiguous():
                t = t.contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            shape = list(t.shape)
            if dtype not in _ITEMSIZE:
                self._refuse(f"a torch.Tensor of dtype {dtype}")
            import torch

            arr = (t.view(torch.int16) if dtype == "bfloat16" else t).numpy()
        else:
            arr = obj
            dtype = arr.dtype.name
            if dtype not in _ITEMSIZE:
                self._refuse(f"a numpy.ndarray of dtype {arr.dtype}")
            shape = list(arr.shape)
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            if not arr.flags.c_contiguous:
                arr = _numpy().ascontiguousarray(arr)
        flat = arr.reshape(-1).view(_numpy().uint8)
        return dtype, shape, memoryview(flat)

    def _refuse(self, what: str) -> None:
        self.error = (
            f"the result holds {what}, which does not cross the wire: use one of "
            + ", ".join(_ITEMSIZE)
        )
        raise TypeError(self.error)


def _b64(data: memoryview) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def encode_binary(envelope: bytes, buffers: list[memoryview]) -> list[bytes | memoryview]:
    """The binary framing's parts, in order (the app sends them without joining)."""
    head = _HEAD.pack(protocol.TENSOR_MAGIC, len(envelope))
    end = len(head) + len(envelope)
    pad = -(-end // protocol.TENSOR_ALIGN) * protocol.TENSOR_ALIGN - end
    return [head, envelope, bytes(pad), *buffers]


# --------------------------------------------------------------------------- the call path


_BINARY = protocol.TENSOR_MEDIA_TYPE.encode()
_JSON_HEADER = (b"content-type", b"application/json")
_BINARY_HEADER = (b"content-type", _BINARY)


def _header_value(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class TensorPolicy:
    """How one endpoint reads and writes tensors; ``of`` is ``None`` when it never does."""

    __slots__ = ("result_tensors",)

    def __init__(self, result_tensors: bool) -> None:
        # The result may hold tensors: encode them (else orjson's numpy lists, as before).
        self.result_tensors = result_tensors

    @classmethod
    def of(cls, fn: Any, types: dict[str, TypeDef]) -> TensorPolicy | None:
        params = any(mentions(p.type, types, is_tensor) for p in fn.params)
        result = mentions(fn.returns, types, may_hold_tensors)
        if not params and not mentions(fn.returns, types, is_tensor) and not result:
            return None
        return cls(result)

    def decode(self, scope: Any, raw: bytes, decode_json: Callable[[bytes], Any]) -> Any:
        """The arguments object: JSON, or the binary framing when the body says so."""
        ctype = _header_value(scope, b"content-type")
        if ctype is None or ctype.split(b";")[0].strip().lower() != _BINARY:
            return decode_json(raw)
        from scopegen.server._errors import CallError

        try:
            data = parse_binary(raw)
        except TensorError as exc:
            raise CallError("bad_request", f"bad binary body: {exc}") from None
        if type(data) is not dict:
            raise CallError("bad_request", "the envelope must be a JSON object of arguments")
        return data

    def encode(self, scope: Any, result: Any) -> tuple[tuple[bytes, bytes], bytes]:
        """(content-type header, body): binary only when ``Accept`` names the media type."""
        import orjson

        from scopegen.server._encode import (
            OPTIONS,
            default,
            describe_unserializable,
            dumps_fallback,
        )
        from scopegen.server._errors import CallError

        accept = _header_value(scope, b"accept")
        binary = accept is not None and _BINARY in accept.lower()
        if not self.result_tensors:
            encoder: Any = default
            option = OPTIONS
        else:
            encoder = TensorEncoder(binary, default)
            option = 0
        try:
            envelope = orjson.dumps({"result": result}, default=encoder, option=option)
        except TypeError as exc:
            message = getattr(encoder, "error", None)
            if message is None:
                # Integers past 64 bits, which JSON carries and orjson does not.
                fallback = dumps_fallback(result)
                if fallback is not None:
                    return _JSON_HEADER, fallback
                message = describe_unserializable(result, exc)
            raise CallError("unserializable_result", message) from None
        if not binary:
            return _JSON_HEADER, envelope
        buffers = encoder.buffers if isinstance(encoder, TensorEncoder) else []
        # One bytes body (one copy): every ASGI server takes it, Modal's adapter included.
        return _BINARY_HEADER, b"".join(encode_binary(envelope, buffers))


# --------------------------------------------------------------------------- in-process callers


def decode_tensors(value: Any) -> Any:
    """A JSON result with every tensor's JSON form as a numpy array (``scopegen.testing``)."""
    if type(value) is dict:
        if len(value) == 1 and _KEY in value and type(value[_KEY]) is dict:
            dtype, shape, data = _json_form(value, tuple(_ITEMSIZE))
            return _build("numpy", dtype, shape, data)
        return {k: decode_tensors(v) for k, v in value.items()}
    if type(value) is list:
        return [decode_tensors(v) for v in value]
    return value


def json_tensor_default(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """orjson's ``default`` writing torch tensors and numpy arrays as the JSON form."""
    return TensorEncoder(False, fallback)
