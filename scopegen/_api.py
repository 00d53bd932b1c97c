"""``scopegen.build``, ``install``, ``deploy`` and ``lint``: the CLI's commands as functions.

Each is a thin layer over the code of its command (``scopegen.commands``):
the same analysis, emitters, files and Modal steps; only the results come
back as objects instead of printed lines. The command modules are imported
when a function runs, so that ``scopegen.lint`` costs what ``scopegen lint``
does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scopegen.analyze import Diagnostic
    from scopegen.commands.build import BuildResult
    from scopegen.spec import Interface

__all__ = ["Build", "InstallError", "Workspace", "build", "deploy", "install", "lint"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Build:
    """What ``scopegen.build`` wrote into ``out``."""

    out: Path  # the build folder (``OUT``)
    result: BuildResult  # the command's own record (files, config, image)

    @property
    def package(self) -> str:
        """The client package's name (``import`` it, ``pip install`` its folder)."""
        return self.result.package

    @property
    def package_dir(self) -> Path:
        """The pip-installable client project: ``OUT/<package>``."""
        return self.out / self.result.package

    @property
    def interface(self) -> Interface:
        """The analysed interface (named after the package)."""
        return self.result.interface

    @property
    def interface_hash(self) -> str:
        """The hash of the callable surface the client was generated for."""
        return self.result.interface.hash

    @property
    def modal_app(self) -> Path:
        """``OUT/modal_app.py``: ``modal deploy`` it (or use ``scopegen.deploy``)."""
        from scopegen.commands.build import MODAL_APP

        return self.out / MODAL_APP

    @property
    def mcp_json(self) -> Path:
        """``OUT/mcp.json``: an ``mcpServers`` entry naming environment variables."""
        from scopegen.commands.build import MCP_JSON

        return self.out / MCP_JSON


def build(path: PathLike, out: PathLike | None = None, *, name: str | None = None) -> Build:
    """``scopegen build PATH [-o OUT] [--name NAME]``: write the client package and the Modal app.

    ``out`` defaults to ``build/<package>``, as for the command. Lint findings
    are printed on stderr as the command prints them; lint errors raise
    ``scopegen.BuildError`` and write nothing.
    """
    from scopegen.commands.build import generate, write_files

    result = generate(Path(path), Path(out) if out is not None else None, name=name)
    write_files(result.out, result.package, result.files)
    return Build(result.out, result)


class InstallError(RuntimeError):
    """``pip install`` (or making the venv) failed; ``output`` is what it printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n{output.rstrip()}")
        self.output = output


@dataclass(frozen=True)
class Workspace:
    """A virtual environment holding a generated client (an agent's workspace)."""

    root: Path
    package: str

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        """The venv's interpreter: run the agent's code with it."""
        return self.bin / ("python.exe" if os.name == "nt" else "python")


def install(
    build_or_path: Build | PathLike,
    *,
    into: PathLike,
    pip_args: Iterable[str] = (),
) -> Workspace:
    """``pip install`` a generated client into the venv ``into``, made first when missing.

    ``build_or_path`` is a ``Build`` or a client project folder
    (``OUT/<package>``). Installing again (after a rebuild) replaces the
    package. ``pip_args`` go to ``pip install`` (e.g. ``--no-build-isolation``).
    """
    project = _project(build_or_path)
    if not (project / "pyproject.toml").is_file():
        raise InstallError(f"{project} is not a client project (no pyproject.toml)", "")
    workspace = Workspace(Path(into), project.name)
    if not workspace.python.exists():
        _run([sys.executable, "-m", "venv", str(workspace.root)], f"making the venv {into}")
    # pip always reinstalls a project given as a folder, so a rebuilt client replaces the old.
    pip = [str(workspace.python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    _run([*pip, *pip_args, str(project)], f"installing {project}")
    return workspace


def _project(build_or_path: Build | PathLike) -> Path:
    if isinstance(build_or_path, Build):
        return build_or_path.package_dir
    return Path(build_or_path)


def _run(cmd: list[str], what: str) -> None:
    # No PYTHONPATH from here: it would leak this checkout into the workspace.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode})", proc.stdout + proc.stderr)


def deploy(
    path: PathLike,
    out: PathLike | None = None,
    *,
    name: str | None = None,
    dry_run: bool = False,
    environment: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> str | None:
    """``scopegen deploy PATH [-o OUT]``: build, download the models, ``modal deploy``.

    Shows each step as the command does and returns the endpoint's URL, as
    Modal's API gives it (None for ``dry_run``); it is also recorded in
    ``OUT/scopegen-deploy.json`` and becomes the client's default URL. A failed
    step raises ``scopegen.DeployError`` (``exit_code`` as the command's).
    """
    from scopegen.commands.deploy import deploy as run

    return run(
        Path(path),
        Path(out) if out is not None else None,
        name=name,
        dry_run=dry_run,
        environment=environment,
        tag=tag,
        force=force,
    )


def lint(paths: PathLike | Iterable[PathLike]) -> list[Diagnostic]:
    """``scopegen lint PATH...``: the findings, in file order.

    Folders are walked for ``interface.py`` and ``*_interface.py`` as the
    command does. A path that does not exist (or a folder without interface
    files) raises ``FileNotFoundError``; nothing is imported.
    """
    from scopegen.analyze import analyze_file
    from scopegen.commands.lint import discover

    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files, problems = discover([Path(p) for p in given])
    if problems:
        raise FileNotFoundError("; ".join(problems))
    return [d for f in files for d in analyze_file(f).diagnostics]
