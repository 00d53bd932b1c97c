"""A small interface for the MCP bridge tests (CPU only, no model)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Literal, TypedDict

from scopegen import expose


class Span(TypedDict):
    start: int
    end: int


@expose
def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


@expose
def shout(text: str, *, times: int = 1, style: Literal["upper", "title"] = "upper") -> str:
    """Repeat a text in capitals."""
    word = text.upper() if style == "upper" else text.title()
    return " ".join([word] * times)


@expose
def measure(span: Span, spans: list[Span] | None = None) -> dict[str, int]:
    """Length of a span, and the total of some more."""
    extra = sum(s["end"] - s["start"] for s in spans or [])
    return {"length": span["end"] - span["start"], "extra": extra}


@expose
def fail(reason: str) -> None:
    """Always raises, with the given reason."""
    raise RuntimeError(f"refused: {reason}")


@expose
async def slow_echo(value: float) -> float:
    await asyncio.sleep(0)
    return value


@expose
def countdown(start: int) -> Iterator[int]:
    """Count down from start to 1, one item each."""
    yield from range(start, 0, -1)
