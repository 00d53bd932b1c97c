"""Real tensors and arrays in results typed bare (sent as tensors) and typed as JSON."""

import numpy as np
import torch

from scopegen import expose


@expose
def embedding(text: str) -> dict:
    return {"text": text, "embedding": torch.zeros(3)}


@expose
def nested_tensor() -> list:
    return [1, {"scores": [0.5, torch.tensor(1.0)]}]


@expose
def as_list() -> dict:
    return {"embedding": torch.zeros(3).tolist()}


@expose
def array() -> dict:
    return {"values": np.arange(3), "mean": np.float32(1.5), "count": np.int64(3)}


@expose
def typed_as_json() -> list[float]:
    return torch.zeros(3)  # type: ignore[return-value]
