"""The interface every server benchmark serves: a trivial call and a 4096-float result."""

import math

from scopegen import expose

# Computed once at import, as a model's output would be; every side returns the same floats.
EMBEDDING = [math.sin(i) for i in range(4096)]


@expose
def ping(x: int) -> int:
    """Return ``x``: measures the framework, not the function."""
    return x


@expose
def embed(text: str) -> list[float]:
    """A fixed 4096-float vector (the size of a large embedding)."""
    return EMBEDDING
