"""scopegen's ASGI app built by ``create_app`` and run by the plain ``uvicorn`` CLI.

Diagnostic side of bench_server.py: set against ``scopegen serve`` it
separates the app's cost from the serve command's socket and uvicorn setup.
"""

from pathlib import Path

from scopegen.server import ScopegenApp, ServerSettings, create_app


def app() -> ScopegenApp:
    """uvicorn ``--factory`` entry point."""
    return create_app(
        Path(__file__).with_name("bench_interface.py"),
        ServerSettings(token=None, access_log=False),
    )
