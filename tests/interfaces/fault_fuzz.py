"""The API fuzzing target: every wire type goes in and comes back out.

Each function returns its arguments (rearranged at most) with the declared type,
so any valid request must get a 200 whose body matches the documented
schema: a value the server accepts but cannot send back, or sends back
changed, shows up as a failed check. ``maybe_fail`` raises on purpose; it is
the only 500 the fuzz test allows. No model, no torch: it starts fast.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Optional

from pydantic import BaseModel

# pydantic needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import NotRequired, TypedDict

from scopegen import expose


class Color(str, Enum):
    RED = "red"
    GREEN = "green"


class Level(Enum):
    LOW = 1
    HIGH = 2


class Span(TypedDict):
    start: int
    end: int
    label: NotRequired[str]


@dataclass
class Box:
    width: float
    height: float = 1.0
    tags: list[str] = field(default_factory=list)


class Query(BaseModel):
    text: str
    top_k: int = 3
    color: Color = Color.RED


@dataclass
class Tree:
    value: int
    children: list[Tree] = field(default_factory=list)


class DeliberateError(Exception):
    """Raised by ``maybe_fail`` when asked: the one expected 500."""


@expose
def echo_text(text: str) -> str:
    """Return the text unchanged."""
    return text


@expose
def integers(a: int, b: int = 0) -> list[int]:
    return [a, b]


@expose
def floats(xs: list[float], factor: float = 1.0, *, flag: bool = False) -> list[float]:
    return [*xs, factor] if flag else xs


@expose
def pick(mode: Literal["fast", "slow"], n: Literal[1, 2, 3] = 1) -> str:
    return f"{mode}:{n}"


@expose
def paint(color: Color, level: Level = Level.LOW) -> dict[str, Any]:
    return {"color": color.value, "level": level.value}


@expose
def spans(items: list[Span], weights: dict[str, float] | None = None) -> list[Span]:
    return items


@expose
def box_size(box: Box) -> list[float]:
    return [box.width, box.height]


@expose
def search(query: Query, limit: Optional[int] = None) -> Query:  # noqa: UP045 (the spelling is the point)
    return query


@expose
def depth(tree: Tree) -> int:
    return 1 + max((depth(c) for c in tree.children), default=0)


@expose
def pair(p: tuple[int, str], rest: tuple[float, ...] = ()) -> list[Any]:
    # A tuple *result* is left out: schemathesis 4 rewrites `prefixItems` in response
    # schemas into a draft-4 `items` array and then rejects its own rewrite (InvalidSchema).
    return [p[1], p[0], *rest]


@expose
def anything(value: Any = None) -> Any:
    return value


@expose
def options(name: str, **extra: int | str) -> dict[str, int | str]:
    return {"name": name, **extra}


@expose
def nothing() -> None:
    return None


@expose
async def async_echo(text: str, repeat: int = 1) -> list[str]:
    await asyncio.sleep(0)
    return [text] * max(0, min(repeat, 3))


@expose
def maybe_fail(fail: bool, message: str = "asked to fail") -> bool:
    if fail:
        raise DeliberateError(message)
    return fail
