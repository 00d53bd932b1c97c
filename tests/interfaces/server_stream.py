"""Streaming results and jobs: sync and async generators, slow, failing, stoppable."""

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, TypedDict

from scopegen import expose


class Token(TypedDict):
    index: int
    text: str


def _mark(text: str) -> None:
    # The tests read the server's log: a generator's ``finally`` says it ran.
    sys.stderr.write(f"MARK {text}\n")
    sys.stderr.flush()


@expose
def count(n: int, delay: float = 0.0) -> Iterator[int]:
    """Yield 0..n-1, ``delay`` seconds apart."""
    try:
        for i in range(n):
            if delay and i:
                time.sleep(delay)
            yield i
    finally:
        _mark(f"count finally {n}")


@expose
def tokens(text: str) -> Generator[Token, None, None]:
    """One token per word."""
    for i, word in enumerate(text.split()):
        yield {"index": i, "text": word}


@expose
def fail_after(n: int) -> Iterator[int]:
    """Yield n items, then raise."""
    yield from range(n)
    raise ValueError(f"failed after {n}")


@expose
async def acount(n: int, delay: float = 0.0) -> AsyncIterator[int]:
    """Async: yield 0..n-1, ``delay`` seconds apart."""
    try:
        for i in range(n):
            if delay and i:
                await asyncio.sleep(delay)
            yield i
    finally:
        _mark(f"acount finally {n}")


@expose
async def afail_after(n: int) -> AsyncGenerator[str, None]:
    """Async: yield n items, then raise."""
    for i in range(n):
        yield str(i)
    raise RuntimeError("async failure")


@expose
def bad_item() -> Iterator[Any]:
    """The second item is not JSON."""
    yield 1
    yield {1, 2}


@expose
def add(a: int, b: int = 1) -> int:
    """A plain function, for jobs."""
    return a + b


@expose
def slow(seconds: float, tag: str = "") -> str:
    """Sleep, then answer; marks when it starts (jobs: queued ones never run)."""
    _mark(f"slow start {tag}")
    time.sleep(seconds)
    return tag
