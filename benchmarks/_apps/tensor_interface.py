"""What bench_tensors.py serves: one layer's activations (512 x 3584 float32) and a steering vector.

The results are made once at import: the benchmark measures the wire, not the model.
"""

import torch

from scopegen import expose

ROWS, DIM = 512, 3584
_gen = torch.Generator().manual_seed(0)
ACTIVATIONS = torch.randn(ROWS, DIM, generator=_gen)
AS_LISTS = ACTIVATIONS.tolist()


@expose
def activations() -> torch.Tensor:
    """One layer's hidden states over 512 tokens."""
    return ACTIVATIONS


@expose
def activations_list() -> list[list[float]]:
    """The same numbers as nested lists (the only way before tensors were wire types)."""
    return AS_LISTS


@expose
def steer(vector: torch.Tensor) -> float:
    """Take a steering vector; answer something small."""
    return float(vector[0])


@expose
def steer_list(vector: list[float]) -> float:
    return vector[0]
