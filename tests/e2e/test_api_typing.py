"""User code of the Python API is ``mypy --strict``-clean, and wrong uses are caught.

mypy runs from a folder with no configuration of its own and sees scopegen as
installed (its ``py.typed``), the way a researcher's project does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "examples" / "agent" / "experiment.py"

USER_TESTS = """
from collections.abc import Iterator

import pytest

import scopegen
import scopegen.testing


@pytest.fixture(scope="module")
def iface() -> Iterator[scopegen.testing.Interface]:
    with scopegen.testing.load("interface.py", models={"org/name": "./weights"}) as loaded:
        yield loaded


def test_add(iface: scopegen.testing.Interface) -> None:
    assert iface.add(a=2, b=3) == 5
    assert iface.call("add", 2, 3) == 5
    with pytest.raises(scopegen.testing.CallError) as info:
        iface.add(a=True, b=3)
    err: scopegen.testing.CallError = info.value
    code: str = err.code
    status: int = err.status
    assert (code, status) == ("invalid_arguments", 422)
    names = [f["name"] for f in iface.functions]
    assert "add" in names
    response: scopegen.testing.Response = iface.request("GET", "/healthz")
    assert response.status == 200


def test_plugin_fixture(scopegen_load: object) -> None:
    assert scopegen_load


def experiment() -> None:
    found: list[scopegen.Diagnostic] = scopegen.lint(["interface.py"])
    assert all(d.severity in ("error", "warning") for d in found)
    build: scopegen.Build = scopegen.build("interface.py", out="build", name="model_tools")
    digest: str = build.interface_hash
    workspace: scopegen.Workspace = scopegen.install(build, into="workspace")
    python: str = str(workspace.python)
    with scopegen.serve("interface.py", models_dir="models", token=False) as server:
        url: str = server.url
        token: str | None = server.token
        config: dict[str, object] = server.mcp_config()
        env: dict[str, str] = server.client_env(build)
    deployed: str | None = scopegen.deploy("interface.py", dry_run=True)
    print(digest, python, url, token, config, env, deployed)
"""

WRONG = """
import scopegen

package: int = scopegen.build("interface.py").package
scopegen.serve("interface.py", port="8000")
scopegen.install("build/x", into=3)
hash_: bytes = scopegen.testing.load("interface.py").manifest["hash"]  # Any: allowed
"""


def _mypy(folder: Path, cache: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mypy")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mypy"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    return subprocess.run(
        [*cmd, "--strict", "--no-error-summary", "--cache-dir", str(cache), *map(str, files)],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def test_user_scripts_and_tests_type_check_strictly(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "test_interface.py").write_text(textwrap.dedent(USER_TESTS))
    shutil.copy(EXPERIMENT, tmp_path / "experiment.py")
    proc = _mypy(tmp_path, cache, tmp_path / "test_interface.py", tmp_path / "experiment.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_wrong_uses_are_type_errors(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG))
    proc = _mypy(tmp_path, cache, tmp_path / "wrong.py")
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    lines = sorted(int(line.split(":")[1]) for line in errors)
    assert lines == [4, 5, 6], proc.stdout
    assert '"str", variable has type "int"' in proc.stdout
