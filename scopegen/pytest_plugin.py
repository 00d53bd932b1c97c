"""The pytest plugin of scopegen (registered on install): the ``scopegen_load`` fixture.

::

    def test_add(scopegen_load):
        iface = scopegen_load("interface.py")  # beside this test file
        assert iface.add(a=2, b=3) == 5

``scopegen_load(path, **options)`` is ``scopegen.testing.load`` with two
differences: a relative ``path`` is found beside the test file, and each file
(with the same options) loads once per test session, then stays loaded until
the session ends, as on a server: its models load once. Importing this
module costs nothing: pytest loads it into every session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from scopegen.testing import Interface

__all__ = ["scopegen_load"]

Loader = Callable[..., "Interface"]


@pytest.fixture(scope="session")
def _scopegen_loaded() -> Iterator[dict[tuple[str, str], Interface]]:
    loaded: dict[tuple[str, str], Interface] = {}
    yield loaded
    for iface in reversed(loaded.values()):
        iface.close()


@pytest.fixture
def scopegen_load(
    request: pytest.FixtureRequest, _scopegen_loaded: dict[tuple[str, str], Interface]
) -> Loader:
    """Load an interface file in-process (``scopegen.testing.load``), once per session."""

    def load(path: str | Path, **options: Any) -> Interface:
        from scopegen.testing import load as load_interface

        where = Path(path)
        if not where.is_absolute():
            where = request.path.parent / where
        key = (str(where.resolve()), repr(sorted(options.items())))
        iface = _scopegen_loaded.get(key)
        if iface is None:
            iface = _scopegen_loaded[key] = load_interface(where, **options)
        return iface

    return load
