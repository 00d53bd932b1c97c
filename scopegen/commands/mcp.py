"""``scopegen mcp URL``: bridge a running server to MCP over stdio."""

from __future__ import annotations

import sys

__all__ = ["run_mcp"]


def run_mcp(url: str, *, token_env: str = "SCOPEGEN_TOKEN") -> int:
    """Run the bridge until stdin closes; return the process exit code.

    Start-up problems (no ``mcp`` package, bad URL, server unreachable, token
    refused, not a scopegen manifest) are reported on stderr with a non-zero
    code: stdout belongs to the MCP protocol.
    """
    try:
        from scopegen.mcp._bridge import serve_stdio
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "mcp":
            raise
        sys.stderr.write(
            "scopegen mcp: the MCP SDK is not installed; "
            "install it with: pip install 'scopegen[mcp]'\n"
        )
        return 1
    from scopegen.mcp import BridgeStartError, Remote

    try:
        remote = Remote.connect(url, token_env=token_env)
    except BridgeStartError as exc:
        sys.stderr.write(f"scopegen mcp: {exc}\n")
        return exc.exit_code
    try:
        return serve_stdio(remote)
    except KeyboardInterrupt:
        return 130
