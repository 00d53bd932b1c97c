"""Every kind of wire type the generated client must carry, plus functions that fail on purpose.

Used by the client tests: built into a package, installed in a fresh venv and
called through a real ``scopegen serve``. No model, no torch: it starts fast.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Optional

from pydantic import BaseModel

# pydantic needs typing_extensions' TypedDict (inside Report) before Python 3.12.
from typing_extensions import NotRequired, TypedDict

from scopegen import expose

DEFAULT_GREETING = "Hello"


class Color(str, Enum):
    """A colour, sent as its name."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(Enum):
    LOW = 1
    HIGH = 2


class Span(TypedDict):
    """A labelled slice of a text."""

    start: int
    end: int
    label: NotRequired[str]


class Meta(TypedDict):
    # Field names that clash with pydantic.BaseModel attributes in the client.
    schema: str
    model_id: str
    json: int


@dataclass
class Box:
    """A box."""

    width: float
    height: float = 1.0
    tags: list[str] = field(default_factory=list)


class Report(BaseModel):
    """What ``make_report`` returns."""

    title: str
    color: Color
    level: Level
    spans: list[Span]
    box: Box | None = None
    area: float = 0.0


@expose
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@expose
def greet(
    name: str, greeting: str = DEFAULT_GREETING, *, punctuation: Literal["!", "."] = "!"
) -> str:
    """Greet someone; ``greeting`` defaults to the server's DEFAULT_GREETING."""
    return f"{greeting}, {name}{punctuation}"


@expose
def make_report(
    title: str,
    color: Color = Color.RED,
    level: Level = Level.LOW,
    spans: list[Span] | None = None,
    box: Box | None = None,
) -> Report:
    """Build a report from typed pieces."""
    assert isinstance(color, Color) and isinstance(level, Level)
    assert box is None or isinstance(box, Box)
    area = box.width * box.height if box is not None else 0.0
    return Report(title=title, color=color, level=level, spans=spans or [], box=box, area=area)


@expose
def box_area(box: Box) -> float:
    """Area of a box (the server receives a real ``Box``)."""
    assert isinstance(box, Box)
    return box.width * box.height


@expose
def pair(a: int, b: int = 2) -> tuple[int, int]:
    return (a, b)


@expose
def options(name: str, **extra: int | str) -> dict[str, int | str]:
    """Keyword arguments pass through."""
    return {"name": name, **extra}


@expose
def maybe(x: int | None = None) -> Optional[int]:  # noqa: UP045 (both spellings)
    return None if x is None else x * 2


@expose
def stats(values: list[float], weights: dict[str, float] | None = None) -> dict[str, Any]:
    return {"n": len(values), "total": sum(values), "weights": weights or {}}


@expose
def meta() -> Meta:
    return {"schema": "v1", "model_id": "org/model", "json": 3}


@expose
async def slow_add(a: int, b: int, delay: float = 0.0) -> int:
    """Add after ``delay`` seconds, on the event loop."""
    await asyncio.sleep(delay)
    return a + b


@expose
def nap(seconds: float) -> float:
    """Block for ``seconds``: runs past a short per-call timeout."""
    time.sleep(seconds)
    return seconds


@expose
def fail(message: str) -> None:
    """Always raises ``ValueError(message)``."""
    raise ValueError(message)


@expose
def not_json() -> list[int]:
    """Returns a set, which JSON cannot carry."""
    return {1, 2, 3}  # type: ignore[return-value]


@expose
def big(n: int) -> str:
    return "x" * n
