"""A lint-clean interface that uses every kind of wire type."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

from pydantic import BaseModel

from scopegen import expose, get_model_path

Vector = list[float]
MODEL_DIR = get_model_path("org/rich-model")
DEFAULT_SCALE = 2.0


class Color(str, Enum):
    """A colour."""

    RED = "red"
    GREEN = "green"


class Priority(Enum):
    LOW = 1
    HIGH = 2


class Span(TypedDict):
    start: int
    end: int
    label: NotRequired[str]


@dataclass
class Box:
    """A box."""

    width: float
    height: float = 1.0
    tags: list[str] = field(default_factory=list)


class Doc(BaseModel):
    title: str
    spans: list[Span]
    box: Optional[Box] = None
    color: Color = Color.RED


@expose
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@expose
def scale(xs: Vector, factor: float = DEFAULT_SCALE, *, clip: bool = False) -> Vector:
    """Scale a vector."""
    out = [x * factor for x in xs]
    return [min(x, 1.0) for x in out] if clip else out


@expose
def classify(
    text: str,
    mode: Literal["fast", "slow"] = "fast",
    color: Color = Color.GREEN,
    priority: Priority = Priority.LOW,
) -> dict[str, Any]:
    return {"text": text, "mode": mode, "color": color.value, "priority": priority.value}


@expose
def make_doc(title: str, spans: list[Span], box: Box | None = None) -> Doc:
    return Doc(title=title, spans=spans, box=box)


@expose
async def pair(a: int, b: "int" = 2) -> tuple[int, int]:
    return (a, b)


@expose
def options(name: str, **extra: Union[int, str]) -> dict[str, int | str]:
    return {"name": name, **extra}


@expose
def annotated(x: Annotated[int, "a count"], y: Optional[str] = None) -> list[tuple[str, int]] | None:
    return [(y or "", x)]


@expose
def nothing() -> None:
    return None
