"""Fixtures for tests that execute interface files in this process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scopegen import runtime


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[None]:
    """Undo what executing interface files from ``tmp_path`` does to this process."""
    path = list(sys.path)
    paths = runtime.model_paths()
    yield
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).resolve().is_relative_to(tmp_path.resolve()):
            del sys.modules[name]
    sys.path[:] = path
    runtime.configure_model_paths(paths)
