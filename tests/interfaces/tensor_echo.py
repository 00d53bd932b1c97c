"""Tensors on the wire: every annotation form, nested and bare, both kinds (docs/protocol.md)."""

from collections.abc import Iterator
from typing import Any, TypedDict

import numpy as np
import torch
from numpy.typing import NDArray

from scopegen import expose


class Hidden(TypedDict):
    hidden: torch.Tensor
    layer: int


@expose
def echo_torch(x: torch.Tensor) -> torch.Tensor:
    """Returns what it got; says nothing about the kind, so the test asks ``kind_of``."""
    return x


@expose
def echo_numpy(x: np.ndarray) -> np.ndarray:
    return x


@expose
def kind_of(t: torch.Tensor, a: np.ndarray) -> list[str]:
    return [
        type(t).__module__ + "." + type(t).__name__,
        type(a).__module__ + "." + type(a).__name__,
    ]


@expose
def add_float32(x: NDArray[np.float32], v: NDArray[np.float32]) -> NDArray[np.float32]:
    x += v  # writable: the server hands out its own copy
    return x


@expose
def many(xs: list[torch.Tensor], named: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"xs": xs, "named": named}


@expose
def hidden(n: int) -> Hidden:
    # Transposed: not contiguous; requires_grad: must be detached.
    h = torch.arange(n * 4, dtype=torch.float32, requires_grad=True).reshape(n, 4).T
    return {"hidden": h * 1, "layer": n}


@expose
def bare() -> dict:
    return {
        "empty": np.zeros((2, 0), dtype=np.int16),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "bf16": torch.ones(3, dtype=torch.bfloat16),
        "strided": np.arange(10, dtype=np.int32)[::2],
        "big_endian": np.arange(3, dtype=">f4"),
        "n": np.float32(1.5),
    }


@expose
def complex_result() -> dict:
    return {"z": np.zeros(2, dtype=np.complex64)}


@expose
def as_list() -> list[float]:
    return np.arange(3, dtype=np.float32)  # type: ignore[return-value]  # numpy -> JSON list


@expose
def layers(n: int) -> Iterator[NDArray[np.float32]]:
    """One activation per layer, streamed as it is computed."""
    for i in range(n):
        yield torch.full((2, 3), float(i)).numpy()


@expose
def layer_dicts(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"layer": i, "act": torch.arange(4, dtype=torch.bfloat16) + i}
