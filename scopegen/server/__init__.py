"""The scopegen RPC server (protocol v1, ``docs/protocol.md``): raw ASGI + orjson.

``create_app(path_or_analysis, settings)`` lints, imports and reconciles an
interface file and returns the ASGI application; ``scopegen serve`` runs it
under uvicorn and the generated Modal app returns it from
``@modal.asgi_app()``. Everything is loaded inside the factory, so the app
needs no lifespan events; it answers them when sent (shutdown releases the
worker pool and flushes the access log).
"""

from __future__ import annotations

from pathlib import Path

from scopegen.analyze import Analysis
from scopegen.server._app import ScopegenApp
from scopegen.server._loader import (
    CodeUnit,
    Execution,
    InterfaceImportError,
    InterfaceLintError,
    InterfaceLoadError,
    InterfaceMismatchError,
    LoadedInterface,
    checked_analysis,
    compile_units,
    execute,
    load_interface,
    restore_module,
)
from scopegen.server._settings import DEFAULT_MAX_BODY, ServerSettings

__all__ = [
    "DEFAULT_MAX_BODY",
    "CodeUnit",
    "Execution",
    "InterfaceImportError",
    "InterfaceLintError",
    "InterfaceLoadError",
    "InterfaceMismatchError",
    "LoadedInterface",
    "ScopegenApp",
    "ServerSettings",
    "checked_analysis",
    "compile_units",
    "create_app",
    "execute",
    "load_interface",
    "restore_module",
]


def create_app(
    path_or_analysis: str | Path | Analysis, settings: ServerSettings | None = None
) -> ScopegenApp:
    """Build the ASGI app serving one interface file.

    Raises ``InterfaceLintError`` (static errors; nothing imported),
    ``InterfaceImportError`` (the file raised while executing; carries the
    traceback) or ``InterfaceMismatchError`` (run-time exposure differs from
    the analysis). ``settings`` defaults to ``ServerSettings()`` (token from
    ``$SCOPEGEN_TOKEN``).
    """
    settings = settings if settings is not None else ServerSettings()
    loaded = load_interface(
        path_or_analysis, name=settings.name, model_paths=settings.model_paths()
    )
    return ScopegenApp(loaded, settings)
