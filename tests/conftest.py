"""Test layout: unit tests mirror the package (``tests/analyze``, ``tests/emit``,
``tests/server``, ``tests/commands``); ``tests/e2e`` starts real servers and
venvs and ``tests/fuzz`` runs the fuzzers. Both carry the ``e2e`` marker, so
``pytest -m "not e2e"`` is the fast suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_SLOW = {"e2e", "fuzz"}
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = Path(str(item.fspath)).resolve().relative_to(_HERE).parts[0]
        except ValueError:
            continue
        if top in _SLOW:
            item.add_marker(pytest.mark.e2e)
