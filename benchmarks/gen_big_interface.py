"""Write a large, lint-clean interface file (default 2,000 functions, ~12k lines)."""

from __future__ import annotations

import sys
from pathlib import Path

HEADER = """from typing import Literal, TypedDict

from scopegen import expose, get_model_path

MODEL = get_model_path("org/model")


class Result(TypedDict):
    text: str
    score: float

"""

FUNC = '''
@expose
def f{i}(text: str, n: int = 3, mode: Literal["a", "b"] = "a") -> Result:
    """Function number {i}."""
    return {{"text": text * n, "score": float(len(mode))}}
'''


def generate(n: int = 2000) -> str:
    return HEADER + "".join(FUNC.format(i=i) for i in range(n))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("big_interface.py")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    out.write_text(generate(n))
    print(f"{out}: {n} functions, {out.read_text().count(chr(10))} lines")
