"""``scopegen.build``, ``deploy`` and ``lint`` from Python, and what ``import scopegen`` costs.

Each function must give what its command gives (they share its code); the
command is run beside it where the two can be compared. ``scopegen.serve``
and ``scopegen.install`` start processes and venvs: ``tests/e2e/test_serve_api.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import scopegen
from scopegen.analyze import Diagnostic, analyze_file
from scopegen.commands import deploy as deploy_command
from scopegen.commands.build import generate
from tests.commands.test_modal_deploy import FAKE_MODAL, MODEL_INTERFACE, _interface

ROOT = Path(__file__).resolve().parents[1]
IFACES = ROOT / "tests" / "interfaces"


def _loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    heavy = (
        "torch", "numpy", "transformers", "uvicorn", "modal", "httpx", "orjson",
        "pydantic", "typer", "click", "rich", "importlib.metadata", "scopegen.server",
    )  # fmt: skip
    check = f"import sys\n{code}\nprint([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))
    return loaded


# --------------------------------------------------------------------------- import


def test_import_scopegen_imports_nothing_heavy() -> None:
    assert _loaded_after("import scopegen") == []


def test_public_names_are_listed_and_load_on_first_use() -> None:
    for name in scopegen.__all__:
        assert getattr(scopegen, name) is not None, name
    assert set(scopegen.__all__) <= set(dir(scopegen))
    assert scopegen.build.__module__ == "scopegen._api"
    assert scopegen.serve.__module__ == "scopegen._serve"
    assert scopegen.testing.load.__module__ == "scopegen.testing"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = scopegen.nope  # type: ignore[attr-defined]


def test_the_command_modules_do_not_shadow_the_functions() -> None:
    # ``import scopegen.commands.build`` must leave ``scopegen.build`` the function.
    import scopegen.commands.build

    assert callable(scopegen.build) and scopegen.build.__name__ == "build"


# --------------------------------------------------------------------------- lint


def test_lint_returns_what_the_command_reports(tmp_path: Path) -> None:
    paths = [IFACES / "server_lint_error.py", IFACES / "rich_types.py"]
    found = scopegen.lint(paths)
    assert found and all(isinstance(d, Diagnostic) for d in found)
    assert {d.code for d in found} >= {"SG001"}
    cli = subprocess.run(
        [sys.executable, "-m", "scopegen", "lint", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    assert [d.to_json() for d in found] == json.loads(cli.stdout)


def test_lint_takes_one_path_or_many_and_walks_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "interface.py").write_text("@expose\ndef f(x):\n    return x\n")
    (tmp_path / "b_interface.py").write_text("@expose\ndef g() -> int:\n    return 1\n")
    assert [d.code for d in scopegen.lint(tmp_path / "a" / "interface.py")] == ["SG002", "SG001"]
    assert [d.code for d in scopegen.lint(str(tmp_path))] == ["SG002", "SG001"]
    assert scopegen.lint([tmp_path / "b_interface.py"]) == []


def test_lint_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        scopegen.lint(tmp_path / "missing.py")
    with pytest.raises(FileNotFoundError, match=r"no interface\.py"):
        scopegen.lint(tmp_path)


def test_lint_from_python_stays_as_light_as_the_command() -> None:
    code = f"import scopegen\nassert scopegen.lint({str(IFACES / 'rich_types.py')!r}) == []"
    assert _loaded_after(code) == []


# --------------------------------------------------------------------------- build


def test_build_writes_what_the_command_writes_and_says_where(tmp_path: Path) -> None:
    interface = IFACES / "client_rich.py"
    build = scopegen.build(interface, out=tmp_path / "api", name="rich-tools")
    assert build.package == "rich_tools"
    assert build.package_dir == tmp_path / "api" / "rich_tools"
    assert (build.package_dir / "pyproject.toml").is_file()
    assert build.modal_app == tmp_path / "api" / "modal_app.py" and build.modal_app.is_file()
    assert build.mcp_json.is_file()
    assert build.interface_hash == analyze_file(interface).interface.hash
    init = (build.package_dir / "src" / "rich_tools" / "_base_client.py").read_text()
    assert f'INTERFACE_HASH: Final = "{build.interface_hash}"' in init
    command = ["build", str(interface), "-o", str(tmp_path / "cli"), "--name", "rich-tools"]
    cli = subprocess.run(
        [sys.executable, "-m", "scopegen", *command], capture_output=True, text=True
    )
    assert cli.returncode == 0, cli.stderr
    written = sorted(p.relative_to(tmp_path / "api") for p in (tmp_path / "api").rglob("*"))
    assert written == sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*"))
    for rel in build.result.files:
        assert (tmp_path / "api" / rel).read_bytes() == (tmp_path / "cli" / rel).read_bytes()
    assert build.result.files == generate(interface, tmp_path / "api", name="rich-tools").files


def test_build_goes_to_build_slash_package_by_default_as_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    build = scopegen.build(IFACES / "client_rich.py", name="rich_tools")
    assert build.out == Path("build") / "rich_tools"
    assert (tmp_path / "build" / "rich_tools" / "rich_tools" / "pyproject.toml").is_file()


def test_build_refuses_lint_errors_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(scopegen.BuildError, match="lint error"):
        scopegen.build(IFACES / "server_lint_error.py", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- deploy


@pytest.fixture
def fake_modal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake" / "modal_cli.py"
    script.parent.mkdir()
    script.write_text(FAKE_MODAL, encoding="utf-8")
    monkeypatch.setattr(deploy_command, "modal_command", lambda: [sys.executable, str(script)])
    (script.parent / "URL").write_text("https://ws--greeter-app-server-web.modal.run")
    # Modal's API answers the endpoint lookup (it cannot be reached from here).
    monkeypatch.setattr(
        deploy_command, "web_url", lambda app, env: "https://ws--greeter-app-server-web.modal.run"
    )
    monkeypatch.chdir(tmp_path)
    return script


def test_deploy_runs_the_commands_steps_and_returns_the_url(
    tmp_path: Path, fake_modal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    url = scopegen.deploy(interface, out="out")
    assert url == "https://ws--greeter-app-server-web.modal.run"
    calls = (fake_modal.parent / "calls.txt").read_text().splitlines()
    assert calls == [
        "run --detach out/modal_download.py::download_models",
        "deploy out/modal_app.py",
    ]
    out = capsys.readouterr().out
    assert "4/4" in out and url in out
    assert url in (tmp_path / "out" / "scopegen-deploy.json").read_text()


def test_deploy_dry_run_writes_the_build_and_returns_no_url(
    tmp_path: Path, fake_modal: Path
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    assert scopegen.deploy(interface, out=tmp_path / "out", dry_run=True) is None
    assert (tmp_path / "out" / "modal_app.py").is_file()
    assert not (fake_modal.parent / "calls.txt").exists()


def test_a_failed_step_raises_with_the_commands_exit_code(tmp_path: Path, fake_modal: Path) -> None:
    (fake_modal.parent / "FAIL_DOWNLOAD").touch()
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    with pytest.raises(scopegen.DeployError, match="model download failed") as info:
        scopegen.deploy(interface, out="out")
    assert info.value.exit_code == 3
    calls = (fake_modal.parent / "calls.txt").read_text().splitlines()
    assert calls == ["run --detach out/modal_download.py::download_models"]  # nothing deployed
    with pytest.raises(scopegen.DeployError, match="no such file") as missing:
        scopegen.deploy(tmp_path / "nope.py")
    assert missing.value.exit_code == 2
