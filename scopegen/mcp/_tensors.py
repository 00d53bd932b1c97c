"""Tensors in tool results become short summaries: an agent cannot read 7 MB of base64.

A summary names the dtype and shape and gives min / max / mean / L2 norm and
the first values, in a bounded number of characters (``MAX_SUMMARY``) whatever
the tensor's size. numpy is used when it is installed; the bridge does not need it.
"""

from __future__ import annotations

import binascii
import math
import struct
from typing import Any, Final

from scopegen import protocol

__all__ = ["MAX_SUMMARY", "mentions_tensors", "summarize_tensors"]

MAX_SUMMARY: Final = 2000
_FIRST: Final = 8
# struct formats of the wire dtypes; bfloat16 is read as the top half of a float32.
_FORMATS: Final = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "float16": "e",
    "bfloat16": "H",
    "float32": "f",
    "float64": "d",
}


def mentions_tensors(schema: object) -> bool:
    """Does a JSON Schema describe a tensor anywhere (``x-scopegen-tensor``)?"""
    if isinstance(schema, dict):
        return protocol.TENSOR_SCHEMA_KEY in schema or any(
            mentions_tensors(v) for v in schema.values()
        )
    if isinstance(schema, list):
        return any(mentions_tensors(v) for v in schema)
    return False


def summarize_tensors(value: Any) -> Any:
    """``value`` with every tensor's JSON form replaced by its summary (a str)."""
    if isinstance(value, dict):
        header = value.get(protocol.TENSOR_KEY) if len(value) == 1 else None
        if isinstance(header, dict):
            return summary(header)
        return {k: summarize_tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [summarize_tensors(v) for v in value]
    return value


def summary(header: dict[str, Any]) -> str:
    dtype, shape = header.get("dtype"), header.get("shape")
    if dtype not in _FORMATS or not isinstance(shape, list) or len(shape) > 64:
        return "tensor (malformed header)"
    try:
        data = binascii.a2b_base64(str(header.get("data", "")))
    except ValueError:
        return f"tensor {dtype} {shape} (bad base64)"
    size = struct.calcsize(_FORMATS[dtype])
    data = data[: len(data) - len(data) % size]
    count = len(data) // size
    shown_shape = str(shape) if len(str(shape)) <= 200 else f"({len(shape)} dimensions)"
    head = f"tensor {dtype} shape {shown_shape}, {count:,} values"
    if count == 0:
        return head + " (empty)"
    lo, hi, mean, norm, first = _stats(dtype, data)
    stats = f"min {lo:.6g}, max {hi:.6g}, mean {mean:.6g}, norm {norm:.6g}"
    more = ", …" if count > _FIRST else ""
    text = f"{head}: {stats}; first values [{', '.join(f'{v:.6g}' for v in first)}{more}]"
    return text[:MAX_SUMMARY]


_NP_CODES: Final = {
    "bool": "?",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "float16": "<f2",
    "bfloat16": "<u2",
    "float32": "<f4",
    "float64": "<f8",
}


def _stats(dtype: str, data: bytes) -> tuple[float, float, float, float, list[float]]:
    np = _np()
    if np is not None:
        arr = np.frombuffer(data, dtype=_NP_CODES[dtype])
        if dtype == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        x = arr.astype(np.float64)
        finite = x[np.isfinite(x)]
        pick = finite if finite.size else x
        return (
            float(pick.min()),
            float(pick.max()),
            float(x.mean()),
            float(np.sqrt(np.dot(x, x))),
            [float(v) for v in x[:_FIRST]],
        )
    values = [float(v) for (v,) in struct.iter_unpack("<" + _FORMATS[dtype], data)]
    if dtype == "bfloat16":
        values = [struct.unpack("<f", struct.pack("<I", int(v) << 16))[0] for v in values]
    finite_values = [v for v in values if math.isfinite(v)] or values
    return (
        min(finite_values),
        max(finite_values),
        math.fsum(values) / len(values),
        math.sqrt(math.fsum(v * v for v in values)),
        values[:_FIRST],
    )


def _np() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy
