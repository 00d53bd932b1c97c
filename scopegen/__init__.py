"""scopegen: typed RPC for GPU functions.

An interface file marks functions with ``@expose``; scopegen lints it,
generates a typed client package and a Modal app from it, and serves it.
From Python, the same commands are functions::

    with scopegen.serve("interface.py", models_dir="models") as server:
        build = scopegen.build("interface.py", out="build", name="model_tools")
        workspace = scopegen.install(build, into="workspace/.venv")
        mcp_config = server.mcp_config()

and ``scopegen.testing.load`` runs an interface in this process for tests.
Everything but ``expose`` and ``get_model_path`` is imported on first use:
interface files and ``scopegen lint`` import this package, and must stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scopegen.runtime import ModelNotFoundError, expose, get_model_path

if TYPE_CHECKING:
    from scopegen import testing
    from scopegen._api import Build, InstallError, Workspace, build, deploy, install, lint
    from scopegen._serve import Server, ServerStartError, serve
    from scopegen.analyze import Diagnostic
    from scopegen.commands.build import BuildError
    from scopegen.commands.deploy import DeployError

__all__ = [
    "Build",
    "BuildError",
    "DeployError",
    "Diagnostic",
    "InstallError",
    "ModelNotFoundError",
    "Server",
    "ServerStartError",
    "Workspace",
    "__version__",
    "build",
    "deploy",
    "expose",
    "get_model_path",
    "install",
    "lint",
    "serve",
    "testing",
]

# Name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "Build": "scopegen._api",
    "InstallError": "scopegen._api",
    "Workspace": "scopegen._api",
    "build": "scopegen._api",
    "deploy": "scopegen._api",
    "install": "scopegen._api",
    "lint": "scopegen._api",
    "Server": "scopegen._serve",
    "ServerStartError": "scopegen._serve",
    "serve": "scopegen._serve",
    "Diagnostic": "scopegen.analyze",
    "BuildError": "scopegen.commands.build",
    "DeployError": "scopegen.commands.deploy",
}

# Read from the installed distribution on first use: importlib.metadata costs
# more than the rest of ``import scopegen``, which the lint path and every
# interface file pay for.
__version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("scopegen")
        except PackageNotFoundError:  # run from source without installing (Modal's image)
            return "0+unknown"
    if name == "testing":
        return importlib.import_module("scopegen.testing")
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'scopegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
