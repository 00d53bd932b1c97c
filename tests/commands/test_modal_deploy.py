"""``scopegen deploy`` / ``scopegen dev``: build, download on CPU, ``modal deploy``, the URL.

Nothing here reaches Modal: ``--dry-run`` must not try (the Modal server URL
points at a closed port to make sure), and the full sequence runs against a
stand-in ``modal`` CLI. The stand-in prints what a real ``modal deploy``
prints, through modal's own output module (``modal.output.enable_output``,
``FunctionCreationStatus``, the object tree), into the same pipe a real one
would write to: 80 columns, so long URLs wrap, and OSC-8 hyperlinks under
``FORCE_COLOR``. The endpoint URL must come from Modal's API instead: the
test replaces ``modal.Cls.from_name`` in the ``scopegen`` process, the one
call through which scopegen asks Modal, and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen.commands import deploy

pytest.importorskip("modal")

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

# The longest app name scopegen allows, in a workspace with a long name: the URL
# is wider than modal's 80-column console, so its own output wraps it.
LONG_APP = "greeter-app-for-the-interpretability-sweeps-of-team-four"
assert len(LONG_APP) == 56
URL = f"https://research-lab-2025--{LONG_APP}-server-web.modal.run"


def _interface(folder: Path, source: str, config: str = f'name = "{LONG_APP}"\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interface.py").write_text(textwrap.dedent(source))
    (folder / "scopegen.toml").write_text(config)
    return folder / "interface.py"


def _cli(
    args: list[str],
    cwd: Path,
    prelude: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``scopegen ARGS`` in a fresh interpreter, its output in a pipe (as in CI)."""
    argv = f"sys.argv = ['scopegen', *{args!r}]"
    code = "\n".join(["import sys", prelude, "from scopegen.cli import main", argv, "main()"])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env={**os.environ, **OFFLINE, **(env or {})},
        timeout=180,
    )


def test_modal_runs_with_this_interpreter_whatever_is_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "bin" / "modal"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 99\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{os.environ['PATH']}")
    assert deploy.modal_command() == [sys.executable, "-m", "modal"]


def test_a_modal_older_than_1_1_4_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    assert deploy.modal_version_problem() is None  # the installed one is recent enough
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.1.3")
    problem = deploy.modal_version_problem()
    assert problem is not None
    assert "modal 1.1.3 is installed" in problem and "modal>=1.1.4" in problem


def test_dry_run_writes_the_files_and_prints_the_exact_commands(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _cli(["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("modal_app.py", "modal_download.py", "greeter_app_for_the_interpretability_"
                 "sweeps_of_team_four/pyproject.toml"):
        assert (tmp_path / "out" / name).is_file(), name
    lines = [line.strip() for line in result.stdout.splitlines()]
    modal = f"{sys.executable} -m modal"
    assert f"{modal} run --detach out/modal_download.py::download_models" in lines
    assert f"{modal} deploy out/modal_app.py" in lines
    assert any("out/scopegen-deploy.json" in line for line in lines)
    assert any(line.startswith("export MODAL_KEY=") for line in lines)  # proxy auth by default
    assert "1/4" in result.stdout
    assert not (tmp_path / "out" / "scopegen-deploy.json").exists()
    assert "Traceback" not in result.stderr


def test_dry_run_passes_environment_tag_and_force(tmp_path: Path) -> None:
    config = f'name = "{LONG_APP}"\nenvironment = "staging"\n'
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE, config)
    args = ["deploy", str(interface), "-o", "out", "--dry-run", "--tag", "v3", "--force"]
    result = _cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    modal = f"{sys.executable} -m modal"
    run = f"{modal} run --detach --env staging out/modal_download.py::download_models --force"
    assert run in lines
    assert f"{modal} deploy --env staging --tag v3 out/modal_app.py" in lines
    # --env wins over the configuration.
    again = _cli([*args, "--env", "prod"], cwd=tmp_path)
    assert f"{modal} deploy --env prod --tag v3 out/modal_app.py" in again.stdout


def test_dry_run_without_models_has_no_download_step(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "adder", NO_MODEL_INTERFACE, "proxy_auth = false\n")
    result = _cli(["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "download_models" not in result.stdout
    assert "deploy out/modal_app.py" in result.stdout
    assert "MODAL_KEY" not in result.stdout


def test_missing_modal_is_a_clear_error(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    hide_modal = "sys.modules['modal'] = None"
    result = _cli(["deploy", str(interface), "-o", "out"], cwd=tmp_path, prelude=hide_modal)
    assert result.returncode == 1
    assert "pip install 'modal>=1.1.4,<2'" in result.stderr
    assert "make install" in result.stderr  # .venv already has it
    assert "Traceback" not in result.stderr
    # The dry run still works, and says what is missing.
    dry = _cli(
        ["deploy", str(interface), "-o", "out", "--dry-run"], cwd=tmp_path, prelude=hide_modal
    )
    assert dry.returncode == 0, dry.stderr
    assert "pip install 'modal>=1.1.4,<2'" in dry.stdout
    assert "modal deploy out/modal_app.py" in dry.stdout


def test_deploy_without_o_builds_into_the_packages_own_folder(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE, 'name = "greeter-app"\n')
    result = _cli(["deploy", str(interface), "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "build" / "greeter_app"
    assert (out / "modal_app.py").is_file() and (out / "greeter_app" / "pyproject.toml").is_file()
    assert "1/4 build" in result.stdout and "build/greeter_app" in result.stdout
    assert "modal deploy build/greeter_app/modal_app.py" in " ".join(result.stdout.split())


def test_deploy_into_an_out_that_holds_another_client_says_so(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE, 'name = "greeter-app"\n')
    built = _cli(["build", str(interface), "-o", "build", "--name", "model_tools"], tmp_path)
    assert built.returncode == 0, built.stderr
    result = _cli(["deploy", str(interface), "-o", "build", "--dry-run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "scopegen build: note: build/ also holds build/model_tools/" in result.stderr
    assert "there are now greeter_app's" in result.stderr


def test_deploy_errors_carry_the_command_prefix(tmp_path: Path) -> None:
    result = _cli(["deploy", str(tmp_path / "missing.py"), "--dry-run"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"scopegen deploy: {tmp_path / 'missing.py'}: no such file")
    assert "error:" not in result.stderr


def test_dev_dry_run_prints_the_modal_serve_command(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _cli(["dev", str(interface), "-o", "out", "--dry-run", "-e", "dev"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    modal = f"{sys.executable} -m modal"
    assert f"{modal} run --detach --env dev out/modal_download.py::download_models" in lines
    assert f"{modal} serve --env dev out/modal_app.py" in lines


# --------------------------------------------------------------------------- the real sequence

# The stand-in `modal` CLI. `deploy` prints through modal's own output module,
# as modal's runner does (runner._deploy_app -> _create_all_objects ->
# _functions.FunctionCreationStatus for the class's service function "Server.*").
FAKE_MODAL = """\
import sys
from pathlib import Path

here = Path(__file__).parent
with (here / "calls.txt").open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
command = sys.argv[1]
if command == "run" and (here / "FAIL_DOWNLOAD").exists():
    print("scopegen.modal_runtime.DownloadRefused: the Hugging Face Hub refused 'acme/greeter'"
          " (HTTP 401)", flush=True)
    sys.exit(3)
if command == "deploy":
    from modal._output.status import FunctionCreationStatus
    from modal.output import OutputManager, enable_output
    from modal_proto import api_pb2

    url = (here / "URL").read_text()
    response = api_pb2.FunctionCreateResponse()
    response.function.method_definitions_set = True
    web = response.function.method_definitions["web"]
    web.function_name = "web"
    web.web_url = url
    web.webhook_config.requires_proxy_auth = True
    with enable_output():
        output = OutputManager.get()
        with output.display_object_tree():
            with FunctionCreationStatus("Function", "Server.*") as status:
                status.set_response(response)
        output.step_completed("App deployed in 3.142s! 🎉")
        app_url = "https://modal.com/apps/research-lab-2025/main/deployed/" + sys.argv[-1]
        output.print(f"\\nView Deployment: [magenta][link={app_url}]{app_url}[/link][/magenta]")
"""

# Replaces the one call through which scopegen asks Modal for the endpoint.
FAKE_LOOKUP = """\
import json, modal
from pathlib import Path

def _from_name(app_name, name, *, environment_name=None, **kwargs):
    log = Path({log!r})
    log.write_text(json.dumps([app_name, name, environment_name]))
    if {fail!r}:
        raise modal.exception.NotFoundError(f"App {{app_name!r}} not found")
    class Web:
        def get_web_url(self):
            return {url!r}
    class Obj:
        web = Web()
    class Cls:
        def __call__(self):
            return Obj()
    return Cls()

modal.Cls.from_name = _from_name
import scopegen.commands.deploy as deploy
deploy.modal_command = lambda: [sys.executable, {script!r}]
"""


@pytest.fixture
def fake_modal(tmp_path: Path) -> Path:
    script = tmp_path / "fake" / "modal_cli.py"
    script.parent.mkdir()
    script.write_text(FAKE_MODAL, encoding="utf-8")
    (script.parent / "URL").write_text(URL)
    return script


def _deploy(
    fake_modal: Path, cwd: Path, args: list[str], *, fail_lookup: bool = False, color: bool = True
) -> subprocess.CompletedProcess[str]:
    prelude = FAKE_LOOKUP.format(
        log=str(fake_modal.with_name("lookup.json")),
        fail=fail_lookup,
        url=URL,
        script=str(fake_modal),
    )
    env = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"} if color else {}
    return _cli(args, cwd=cwd, prelude=prelude, env={**env, "COLUMNS": "", "TERM": "xterm"})


def _visible(text: str) -> str:
    """What a terminal shows: without OSC (hyperlinks) and CSI (colour, cursor) sequences."""
    text = re.sub(r"\x1b\][^\x07\x1b]*(\x07|\x1b\\)", "", text)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def _calls(fake_modal: Path) -> list[str]:
    path = fake_modal.with_name("calls.txt")
    return path.read_text().splitlines() if path.exists() else []


def test_deploy_records_the_url_from_modals_api_and_builds_the_client_with_it(
    tmp_path: Path, fake_modal: Path
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _deploy(fake_modal, tmp_path, ["deploy", str(interface), "-o", "out"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(fake_modal) == [
        "run --detach out/modal_download.py::download_models",
        "deploy out/modal_app.py",
    ]
    # modal's own output went through, wrapped and with hyperlinks: its visible
    # text has no intact URL, and the raw text has it only inside escape codes.
    # scopegen asked the API instead.
    modal_part, _, ours = result.stdout.partition("4/4")
    assert "\x1b]8;" in modal_part  # OSC-8 link
    visible = _visible(modal_part)
    assert "web -> " in visible
    assert URL not in visible  # wrapped at 80 columns ...
    assert URL in re.sub(r"\s+", "", visible)  # ... and nothing else
    assert json.loads(fake_modal.with_name("lookup.json").read_text()) == [LONG_APP, "Server", None]
    assert f"endpoint: {URL}" in _visible(ours)  # one line: scopegen soft-wraps its own

    record = json.loads((tmp_path / "out" / "scopegen-deploy.json").read_text())
    assert record == {"app": LONG_APP, "environment": None, "url": URL}
    package = "greeter_app_for_the_interpretability_sweeps_of_team_four"
    base = (tmp_path / "out" / package / "src" / package / "_base_client.py").read_text()
    assert f'DEFAULT_BASE_URL: Final = "{URL}"' in base
    mcp = json.loads((tmp_path / "out" / "mcp.json").read_text())
    assert any(URL in arg for entry in mcp["mcpServers"].values() for arg in entry["args"])

    # The client calls the endpoint with no URL set; <PKG>_URL still wins.
    probe = f"import {package} as p; print(p.Client().base_url)"
    src = str(tmp_path / "out" / package / "src")
    prefix = package.upper()
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    default = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True,
        env={**clean, "PYTHONPATH": src}, timeout=60,
    )
    assert default.stdout.strip() == URL, default.stderr
    override = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True,
        env={**clean, "PYTHONPATH": src, f"{prefix}_URL": "http://127.0.0.1:8123"}, timeout=60,
    )
    assert override.stdout.strip() == "http://127.0.0.1:8123", override.stderr

    # The build reads the record: the output stays a function of its inputs.
    check = _cli(["build", str(interface), "-o", "out", "--check"], cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_deploy_passes_environment_and_tag_and_looks_up_in_that_environment(
    tmp_path: Path, fake_modal: Path
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    args = ["deploy", str(interface), "-o", "out", "-e", "staging", "--tag", "v3", "--force"]
    result = _deploy(fake_modal, tmp_path, args, color=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(fake_modal) == [
        "run --detach --env staging out/modal_download.py::download_models --force",
        "deploy --env staging --tag v3 out/modal_app.py",
    ]
    lookup = json.loads(fake_modal.with_name("lookup.json").read_text())
    assert lookup == [LONG_APP, "Server", "staging"]
    record = json.loads((tmp_path / "out" / "scopegen-deploy.json").read_text())
    assert record["environment"] == "staging"


def test_a_failed_url_lookup_says_the_app_is_deployed_and_records_nothing(
    tmp_path: Path, fake_modal: Path
) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    args = ["deploy", str(interface), "-o", "out"]
    result = _deploy(fake_modal, tmp_path, args, fail_lookup=True)
    assert result.returncode == 1
    assert "is deployed, but Modal did not give its endpoint URL" in result.stderr
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "scopegen-deploy.json").exists()


def test_failed_download_stops_before_deploying(tmp_path: Path, fake_modal: Path) -> None:
    fake_modal.with_name("FAIL_DOWNLOAD").touch()
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _deploy(fake_modal, tmp_path, ["deploy", str(interface), "-o", "out"])
    assert result.returncode == 3
    assert "HTTP 401" in result.stdout  # modal's own output is passed through
    assert "nothing was deployed" in result.stderr
    assert _calls(fake_modal) == ["run --detach out/modal_download.py::download_models"]


def test_no_models_skips_the_download_function(tmp_path: Path, fake_modal: Path) -> None:
    interface = _interface(tmp_path / "adder", NO_MODEL_INTERFACE)
    result = _deploy(fake_modal, tmp_path, ["deploy", str(interface), "-o", "out"])
    assert result.returncode == 0, result.stderr
    assert "no models to download" in result.stdout
    assert _calls(fake_modal) == ["deploy out/modal_app.py"]


def test_lint_errors_stop_the_deploy_before_modal(tmp_path: Path, fake_modal: Path) -> None:
    interface = _interface(tmp_path / "bad", "@expose\ndef f(x):\n    return x\n")
    result = _deploy(fake_modal, tmp_path, ["deploy", str(interface), "-o", "out"])
    assert result.returncode != 0
    assert "nothing was sent to Modal" in result.stderr
    assert _calls(fake_modal) == []


def test_dev_downloads_then_runs_modal_serve(tmp_path: Path, fake_modal: Path) -> None:
    interface = _interface(tmp_path / "greeter", MODEL_INTERFACE)
    result = _deploy(fake_modal, tmp_path, ["dev", str(interface), "-o", "out"])
    assert result.returncode == 0, result.stderr
    assert _calls(fake_modal) == [
        "run --detach out/modal_download.py::download_models",
        "serve out/modal_app.py",
    ]
    assert "loads its models again" in result.stdout
    assert not (tmp_path / "out" / "scopegen-deploy.json").exists()  # -dev URLs are not recorded
