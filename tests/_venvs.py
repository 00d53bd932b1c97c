"""Fresh virtual environments for installing generated client packages.

A generated client must work where only it and its dependencies are
installed, not scopegen. ``shared_venv()`` makes one venv per test session
(creating it and installing httpx, pydantic and orjson is the slow part) and
every client test installs its packages into it with an ordinary
``pip install``::

    from tests._venvs import Venv, shared_venv

    @pytest.fixture(scope="session")
    def venv(tmp_path_factory):
        return shared_venv(tmp_path_factory)

    venv.install(build_dir / "my_client")
    venv.run_python("import my_client; print(my_client.echo('hi'))", env={...})
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Venv", "install_client", "make_venv", "shared_venv"]

# What a generated package depends on, plus its build backend (installed once,
# so each package installs without fetching hatchling into an isolated env).
BASE_PACKAGES = ("httpx>=0.27,<1", "pydantic>=2.6,<3", "orjson>=3.10,<4", "hatchling>=1.24")


@dataclass
class Venv:
    root: Path
    installed: set[str] = field(default_factory=set)

    @property
    def python(self) -> Path:
        sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
        return self.root / sub

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process: no PYTHONPATH, no inherited scopegen settings."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
            and not k.startswith(("SCOPEGEN_", "MODAL_"))
            and not k.endswith(("_URL", "_TOKEN"))
        }
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if extra:
            env.update(extra)
        return env

    def pip(self, *args: str, timeout: float = 600) -> None:
        cmd = [str(self.python), "-m", "pip", "--disable-pip-version-check", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env())
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def install(self, project: Path) -> None:
        """``pip install PROJECT`` (dependencies resolved as usual; they are already there)."""
        self.pip("install", "--no-build-isolation", "--quiet", str(project))
        self.installed.add(project.name)

    def run_python(
        self,
        code: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with the venv's interpreter; fail with its output when it fails.

        It runs in the venv's folder unless ``cwd`` says otherwise: ``-c`` puts
        the working folder on ``sys.path``, and the checkout's would make
        ``scopegen`` importable.
        """
        proc = subprocess.run(
            [str(self.python), "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(env),
            cwd=cwd if cwd is not None else self.root,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"venv python failed ({proc.returncode}):\n--- stdout\n{proc.stdout}"
                f"\n--- stderr\n{proc.stderr}"
            )
        return proc

    def site_packages(self) -> Path:
        out = self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])")
        return Path(out.stdout.strip())


def make_venv(root: Path, packages: Sequence[str] = BASE_PACKAGES) -> Venv:
    """A new venv at ``root`` (from the interpreter running the tests) with ``packages``."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, timeout=300
    )
    venv = Venv(root)
    venv.pip("install", "--quiet", *packages)
    return venv


_lock = threading.Lock()
_shared: Venv | None = None
_built: dict[tuple[str, str], Path] = {}


def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The session's venv for generated clients, made on first use."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = make_venv(tmp_path_factory.mktemp("client-venv") / "venv")
        return _shared


def install_client(
    venv: Venv, interface: Path, package: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Build ``interface``'s client as ``package`` and install it, once per session.

    Returns the build folder (``OUT``; the project is ``OUT/<package>``).
    """
    from scopegen.commands.build import generate, write_files

    key = (str(interface), package)
    with _lock:
        if key not in _built:
            out = tmp_path_factory.mktemp(f"build-{package}")
            result = generate(interface, out, name=package)
            write_files(out, result.package, result.files)
            venv.install(out / result.package)
            _built[key] = out
        return _built[key]
