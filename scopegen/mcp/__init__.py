"""The MCP bridge: a running scopegen server's functions as MCP tools.

``scopegen mcp URL`` reads the manifest from ``URL/v1/functions`` and serves
one MCP tool per exposed function over stdio, forwarding each call to
``POST URL/v1/call/{name}``. Tool input schemas are the manifest's parameter
schemas, byte for byte, so an agent sees exactly what the server enforces.

Layout (only ``_bridge`` imports the ``mcp`` SDK, and only
``scopegen.commands.mcp`` imports ``_bridge``, so lint and build never pay for
it; ``scopegen.emit.mcp`` writes the ``mcp.json`` of ``scopegen build``)::

    _remote.py   talking to the server: URL, token, manifest, calls, error text
    _sdk.py      which SDK is installed and whether the bridge runs on it (1.10+ or 2.x)
    _bridge.py   the stdio MCP server (low-level ``mcp.server.Server`` API, both majors)
"""

from __future__ import annotations

from scopegen.mcp._remote import BridgeStartError, CallOutcome, Remote
from scopegen.mcp._sdk import installed_sdk_version, sdk_problem

__all__ = ["BridgeStartError", "CallOutcome", "Remote", "installed_sdk_version", "sdk_problem"]
