"""Streaming and job functions for ``bench_stream.py``."""

from collections.abc import AsyncIterator, Iterator

from scopegen import expose


@expose
def count(n: int) -> Iterator[int]:
    """0..n-1 as fast as they can go (a sync generator, on a worker thread)."""
    yield from range(n)


@expose
async def acount(n: int) -> AsyncIterator[int]:
    """0..n-1 on the event loop (an async generator)."""
    for i in range(n):
        yield i


@expose
def add(a: int, b: int = 1) -> int:
    return a + b
