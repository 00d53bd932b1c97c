"""``scopegen mcp URL``: bridge a running server to MCP over stdio."""

from __future__ import annotations

import sys

from scopegen.mcp import BridgeStartError, Remote, installed_sdk_version, sdk_problem

__all__ = ["run_mcp"]


def run_mcp(url: str, *, token_env: str = "SCOPEGEN_TOKEN") -> int:
    """Run the bridge until stdin closes; return the process exit code.

    Start-up problems (no ``mcp`` package or an unsupported one, bad URL,
    server unreachable, token refused, not a scopegen manifest) are one line
    on stderr with a non-zero code: stdout belongs to the MCP protocol.
    """
    version = installed_sdk_version()
    problem = sdk_problem(version)
    if problem is None:
        try:
            from scopegen.mcp._bridge import serve_stdio
        except ImportError as exc:
            # Metadata says a supported version, but its modules moved (a broken install).
            problem = f"the installed MCP SDK (mcp {version}) does not import: {exc}"
    if problem is not None:
        sys.stderr.write(f"scopegen mcp: {problem}\n")
        return 1

    try:
        return serve_stdio(Remote.connect(url, token_env=token_env))
    except BridgeStartError as exc:
        sys.stderr.write(f"scopegen mcp: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
