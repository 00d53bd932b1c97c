"""The optional extras' requirements, and how to install them.

scopegen is installed from a clone (``make install``, or ``pip install -e
'.[mcp,modal]'`` in it), not from a package index, so a hint that says
``pip install 'scopegen[mcp]'`` cannot work. The SDKs themselves are on the
index: the hints name them with the bounds of ``pyproject.toml``'s extras
(a unit test keeps the two equal).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MCP_REQUIREMENT", "MODAL_REQUIREMENT", "install_hint"]

MCP_REQUIREMENT: Final = "mcp>=1.10,<3"
MODAL_REQUIREMENT: Final = "modal>=1.1.4,<2"


def install_hint(requirement: str) -> str:
    """``pip install 'REQ'``, and that ``make install``'s ``.venv`` already has it."""
    return (
        f"pip install '{requirement}' (or, in a scopegen clone, `make install`: "
        "its .venv has the mcp and modal SDKs)"
    )
