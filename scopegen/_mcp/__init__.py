"""The MCP bridge: a running scopegen server's functions as MCP tools.

``scopegen mcp URL`` reads the manifest from ``URL/v1/functions`` and serves
one MCP tool per exposed function over stdio, forwarding each call to
``POST URL/v1/call/{name}``. Tool input schemas are the manifest's parameter
schemas, byte for byte, so an agent sees exactly what the server enforces.

Layout (only ``_bridge`` imports the ``mcp`` SDK, and only ``run_mcp`` imports
``_bridge``, so lint and build never pay for it)::

    _config.py   mcp_config(): the mcpServers entry that ``scopegen build`` writes
    _remote.py   talking to the server: URL, token, manifest, calls, error text
    _bridge.py   the stdio MCP server (low-level ``mcp.server.Server`` API)
"""

from __future__ import annotations

import sys

from scopegen._mcp._config import env_prefix, mcp_config

__all__ = ["env_prefix", "mcp_config", "run_mcp"]


def run_mcp(url: str, *, token_env: str = "SCOPEGEN_TOKEN") -> int:
    """Run the bridge until stdin closes; return the process exit code.

    Start-up problems (no ``mcp`` package, bad URL, server unreachable, token
    refused, not a scopegen manifest) are reported on stderr with a non-zero
    code: stdout belongs to the MCP protocol.
    """
    try:
        from scopegen._mcp._bridge import serve_stdio
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "mcp":
            raise
        sys.stderr.write(
            "scopegen mcp: the MCP SDK is not installed; "
            "install it with: pip install 'scopegen[mcp]'\n"
        )
        return 1
    from scopegen._mcp._remote import BridgeStartError, Remote

    try:
        remote = Remote.connect(url, token_env=token_env)
    except BridgeStartError as exc:
        sys.stderr.write(f"scopegen mcp: {exc}\n")
        return exc.exit_code
    try:
        return serve_stdio(remote)
    except KeyboardInterrupt:
        return 130
