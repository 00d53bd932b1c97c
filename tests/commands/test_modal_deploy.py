"""``scopegen deploy``: build, then download on CPU, then ``modal deploy``.

Nothing here reaches Modal: ``--dry-run`` must not try (the Modal server URL
points at a closed port to make sure), and the full sequence runs against a
stand-in ``modal`` CLI that records its arguments and answers like the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen.commands import deploy

MODEL_INTERFACE = """\
    model_dir = get_model_path("acme/greeter")


    @expose
    def greet(name: str) -> str:
        return f"hello {name}"
"""

NO_MODEL_INTERFACE = """\
    @expose
    def add(a: int, b: int) -> int:
        return a + b
"""

# Offline guard: any attempt to talk to Modal fails fast instead of succeeding.
OFFLINE = {"MODAL_SERVER_URL": "http://127.0.0.1:9", "MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": ""}


def _interface(folder: Path, source: str, config: str = 'name = "greeter-app"\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interface.py").write_text(textwrap.dedent(source))
    (folder / "scopegen.toml").write_text(config)
    return folder / "interface.py"


def _run_cli(args: list[str], cwd: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    argv = f"sys.argv = ['scopegen', *{args!r}]"
    code = "\n".join([prelude, "import sys", "from scopegen.cli import main", argv, "main()"])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )


def test_dry_run_writes_the_files_and_prints_the_exact_commands(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _run_cli(["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "modal_app.py").is_file()
    assert (tmp_path / "out" / "greeter_app" / "pyproject.toml").is_file()
    lines = [line.strip() for line in result.stdout.splitlines()]
    modal = " ".join(deploy.modal_command() or ["modal"])
    assert f"{modal} run out/modal_app.py::download_models" in lines
    assert f"{modal} deploy out/modal_app.py" in lines
    assert any(line.startswith("export GREETER_APP_URL=") for line in lines)
    assert any(line.startswith("export MODAL_KEY=") for line in lines)  # proxy auth by default
    assert "1/3" in result.stdout
    assert "Traceback" not in result.stderr


def test_dry_run_without_models_has_no_download_step(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "adder", NO_MODEL_INTERFACE, "proxy_auth = false\n")
    result = _run_cli(["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "download_models" not in result.stdout
    assert "deploy out/modal_app.py" in result.stdout
    assert "MODAL_KEY" not in result.stdout


def test_missing_modal_is_a_clear_error(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    hide_modal = "import sys; sys.modules['modal'] = None"
    result = _run_cli(["deploy", str(interface), "-o", "out"], cwd=tmp_path, prelude=hide_modal)
    assert result.returncode == 1
    assert "pip install 'modal>=1.0,<2'" in result.stderr
    assert "make install" in result.stderr  # .venv already has it
    assert "Traceback" not in result.stderr
    # The dry run still works, and says what is missing.
    dry = _run_cli(
        ["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path, prelude=hide_modal
    )
    assert dry.returncode == 0, dry.stderr
    assert "pip install 'modal>=1.0,<2'" in dry.stdout
    assert "modal deploy out/modal_app.py" in dry.stdout


def test_deploy_without_o_builds_into_the_packages_own_folder(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _run_cli(["deploy", str(interface), "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build" / "greeter_app"
    assert (out / "modal_app.py").is_file() and (out / "greeter_app" / "pyproject.toml").is_file()
    assert "1/3 build" in result.stdout and "build/greeter_app" in result.stdout
    assert "modal deploy build/greeter_app/modal_app.py" in " ".join(result.stdout.split())


def test_deploy_into_an_out_that_holds_another_client_says_so(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    built = _run_cli(["build", str(interface), "-o", "build", "--name", "model_tools"], tmp_path)
    assert built.returncode == 0, built.stderr
    result = _run_cli(["deploy", str(interface), "-o", "build", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "scopegen build: note: build/ also holds build/model_tools/" in result.stderr
    assert "there are now greeter_app's" in result.stderr


def test_deploy_errors_carry_the_command_prefix(tmp_path: Path) -> None:
    result = _run_cli(["deploy", str(tmp_path / "missing.py"), "--dry-run"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"scopegen deploy: {tmp_path / 'missing.py'}: no such file")
    assert "error:" not in result.stderr


# --------------------------------------------------------------------------- the real sequence

FAKE_MODAL = """\
import sys
from pathlib import Path

log = Path(__file__).with_name("calls.txt")
with log.open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "run" and Path(__file__).with_name("FAIL_DOWNLOAD").exists():
    print("Error: HTTP 401 from huggingface.co", flush=True)
    sys.exit(3)
if sys.argv[1] == "deploy":
    print("✓ Created objects.")
    print("├── 🔨 Created function download_models.")
    print("└── 🔨 Created web function Server.web => https://ws--greeter-app-server-web.modal.run")
    print("✓ App deployed in 3.1s! 🎉")
"""


@pytest.fixture
def fake_modal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake" / "modal_cli.py"
    script.parent.mkdir()
    script.write_text(FAKE_MODAL, encoding="utf-8")
    monkeypatch.setattr(deploy, "modal_command", lambda: [sys.executable, str(script)])
    monkeypatch.chdir(tmp_path)
    return script


def test_deploy_builds_downloads_then_deploys_and_prints_the_endpoint(
    tmp_path: Path, fake_modal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    code = deploy.run_deploy(interface, Path("out"), name=None, dry_run=False)
    out = capsys.readouterr().out
    assert code == 0, out
    calls = (fake_modal.parent / "calls.txt").read_text().splitlines()
    assert calls == ["run out/modal_app.py::download_models", "deploy out/modal_app.py"]
    assert "endpoint: https://ws--greeter-app-server-web.modal.run" in out
    assert "export GREETER_APP_URL=https://ws--greeter-app-server-web.modal.run" in out
    for step in ("1/3", "2/3", "3/3"):
        assert step in out


def test_failed_download_stops_before_deploying(
    tmp_path: Path, fake_modal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_modal.parent / "FAIL_DOWNLOAD").touch()
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    code = deploy.run_deploy(interface, Path("out"), name=None, dry_run=False)
    captured = capsys.readouterr()
    assert code == 3
    assert "HTTP 401" in captured.out  # modal's own output is passed through
    assert "nothing was deployed" in captured.err
    calls = (fake_modal.parent / "calls.txt").read_text().splitlines()
    assert calls == ["run out/modal_app.py::download_models"]


def test_no_models_skips_the_download_function(
    tmp_path: Path, fake_modal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interface = _interface(tmp_path / "adder", NO_MODEL_INTERFACE)
    assert deploy.run_deploy(interface, Path("out"), name=None, dry_run=False) == 0
    assert "no models to download" in capsys.readouterr().out
    calls = (fake_modal.parent / "calls.txt").read_text().splitlines()
    assert calls == ["deploy out/modal_app.py"]


def test_lint_errors_stop_the_deploy_before_modal(
    tmp_path: Path, fake_modal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interface = _interface(tmp_path / "bad", "@expose\ndef f(x):\n    return x\n")
    assert deploy.run_deploy(interface, Path("out"), name=None, dry_run=False) != 0
    assert not (fake_modal.parent / "calls.txt").exists()
