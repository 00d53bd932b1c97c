"""A module imported by fault_basic.py: its names must stay unreachable."""

from __future__ import annotations

import os
from pathlib import Path


def imported_helper() -> str:
    folder = Path(os.environ.get("SCOPEGEN_FAULT_DIR", "."))
    with open(folder / "imported_helper.ran", "a", encoding="utf-8") as f:
        f.write("\n")
    return "imported"
