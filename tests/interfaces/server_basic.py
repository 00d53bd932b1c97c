"""An interface exercising every row of the server's error table (CPU only)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypedDict

from pydantic import BaseModel
from server_helper import HELPER_VALUE  # a helper module beside the file

from scopegen import expose

SECRET = "module-global"


class Color(str, Enum):
    RED = "red"
    GREEN = "green"


class Point(TypedDict):
    x: float
    y: float


@dataclass
class Box:
    label: str
    size: int = 1


class Query(BaseModel):
    text: str
    top_k: int = 3


class _FakeTensor:
    def tolist(self) -> list[float]:
        return [1.0]


def _private_helper() -> str:
    return "private"


@expose
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@expose
def scale(x: float, factor: float = 2.0) -> float:
    return x * factor


@expose
def echo(value: Any = None, *, flag: bool = False) -> dict:
    return {"value": value, "flag": flag}


@expose
def pick(mode: Literal["fast", "slow"], n: Literal[1, 2] = 1) -> str:
    return f"{mode}:{n}"


@expose
def shapes(color: Color, point: Point, box: Box, query: Query | None = None) -> dict:
    return {
        "color_is_enum": isinstance(color, Color),
        "color": color.value,
        "point": point,
        "box_is_dataclass": isinstance(box, Box),
        "box": {"label": box.label, "size": box.size},
        "query_is_model": isinstance(query, Query),
        "top_k": query.top_k if query is not None else None,
    }


@expose
def pair(p: tuple[int, str], items: list[int] | None = None) -> list:
    return [list(p), items]


@expose
def options(**extra: int) -> dict[str, int]:
    return dict(extra)


@expose
def boom(message: str = "kaboom") -> str:
    raise ValueError(message)


@expose
def tensor() -> dict:
    return {"embedding": _FakeTensor()}


@expose
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@expose
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@expose
async def async_sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@expose
def helper() -> str:
    return HELPER_VALUE


@expose
def whoami() -> dict:
    return {"name": __name__, "file": __file__.rsplit("/", 1)[-1]}


@expose
def numbers() -> dict:
    return {"sum": 3}


if __name__ == "__main__":
    raise SystemExit("the __main__ block must not run under the server")
