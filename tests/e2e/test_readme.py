"""README.md's code blocks (and examples/agent/README.md's), run here or checked.

Every fenced block with a language other than ``text`` follows a marker line,
``<!-- readme-test: NAME -->``: a test below runs or checks block NAME, or the
marker says ``skip (why)``. A new block without one fails the first test.

The shell blocks run from a clone-like copy of the working tree (the tracked
and untracked-but-not-ignored files, committed in a fresh repository), so
``git status`` there shows what a block leaves behind. The copy's ``.venv``
is this test run's environment (``.venv/bin`` links to it); ``.demo/models``
is placed as ``make demo`` places it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from scopegen.config import parse_config
from scopegen.emit.mcp import mcp_config
from tests._serving import running_server

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
AGENT_README = ROOT / "examples" / "agent" / "README.md"
_BLOCK = re.compile(
    r"^(?:<!-- readme-test: (?P<mark>[^\n]*?) -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    mark: str | None
    line: int


def readme_blocks(path: Path = README) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(m["lang"], m["body"], m["mark"], text.count("\n", 0, m.start("lang")) + 1)
        for m in _BLOCK.finditer(text)
    ]


def block(name: str, path: Path = README) -> str:
    found = [b.body for b in readme_blocks(path) if b.mark == name]
    assert len(found) == 1, f"{path.name} has {len(found)} blocks marked {name!r}"
    return found[0]


TESTED = {
    "hand-loop",
    "client",
    "example-interface",
    "lint-example",
    "gemma",
    "gemma-config",
    "bucket-mounts",
    "mcp-json",
    "ci",
    "pre-commit",
}


def test_every_code_block_is_tested_or_says_why_not() -> None:
    blocks = [b for b in readme_blocks() if b.lang not in ("", "text")]
    assert len(blocks) >= len(TESTED)
    for b in blocks:
        assert b.mark is not None, f"README.md:{b.line}: a {b.lang} block without a marker"
        assert b.mark in TESTED or re.fullmatch(r"skip \(.+\)", b.mark), (b.line, b.mark)
    assert {b.mark for b in blocks} >= TESTED
    assert [b.mark for b in readme_blocks(AGENT_README)] == ["agent"]


# --------------------------------------------------------------------------- the clone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout


def _clone_like(dest: Path) -> Path:
    """The working tree as a fresh clone would have it, plus `make demo`'s state."""
    listed = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "clone")
    # `make install`'s .venv: this environment, entry by entry (a folder, as .gitignore's
    # `.venv/` expects; pyvenv.cfg beside bin/ makes .venv/bin/python this venv's Python).
    (dest / ".venv").mkdir()
    for entry in Path(sys.prefix).iterdir():
        (dest / ".venv" / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    spec = importlib.util.spec_from_file_location("_readme_demo", dest / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demo  # its dataclasses look their module up
    spec.loader.exec_module(demo)
    demo.place_model(dest / ".demo" / "models")
    assert _git(dest, "status", "--porcelain") == ""
    return dest


def _shell_env(**extra: str) -> dict[str, str]:
    """A new shell's environment: no active venv (its bin dir is not on PATH), no settings."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
        and not k.startswith(("SCOPEGEN_", "MODEL_TOOLS_"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    # Nothing may reach a model hub (the weights are local).
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@contextlib.contextmanager
def _process_group() -> Iterator[list[subprocess.Popen[str]]]:
    """Kill whatever a block left running in its process group, whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _run_shell(
    script: str, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as pasted into bash, stopping at the first failing line."""
    with _process_group() as procs:
        proc = subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        out, _ = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _with_port(script: str, port: int) -> str:
    """The block on a free port instead of 8000 (other servers may hold 8000 here)."""
    assert DEFAULT_URL in script
    assert "scopegen serve " in script
    return script.replace(DEFAULT_URL, f"http://127.0.0.1:{port}").replace(
        "scopegen serve ", f"scopegen serve --port {port} "
    )


def _wait_port_closed(port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class HandLoop:
    clone: Path
    result: subprocess.CompletedProcess[str]
    port: int
    stopped: bool


@pytest.fixture(scope="module")
def hand_loop(tmp_path_factory: pytest.TempPathFactory) -> HandLoop:
    clone = _clone_like(tmp_path_factory.mktemp("readme") / "scopegen")
    port = _free_port()
    result = _run_shell(_with_port(block("hand-loop"), port), clone, _shell_env(), timeout=600)
    return HandLoop(clone, result, port, _wait_port_closed(port))


def test_the_hand_loop_runs_as_pasted_prints_the_similarity_and_leaves_the_clone_clean(
    hand_loop: HandLoop,
) -> None:
    out = hand_loop.result.stdout
    assert hand_loop.result.returncode == 0, out
    assert '{"status":"ok"}' in out  # it waited for the model to load
    match = re.search(r"text1='hello' text2='hi' similarity=(0\.\d+)", out)
    assert match, out
    assert 0.5 < float(match[1]) < 1.0
    assert hand_loop.stopped, "the server still listens after the loop"
    assert _git(hand_loop.clone, "status", "--porcelain") == ""


def test_the_client_block_runs_against_the_package_the_hand_loop_built(
    hand_loop: HandLoop,
) -> None:
    assert hand_loop.result.returncode == 0, hand_loop.result.stdout
    clone = hand_loop.clone
    agent_python = clone / ".demo" / "agent" / "bin" / "python"
    models = clone / ".demo" / "models"
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    interface = clone / "examples" / "embeddings" / "interface.py"
    with running_server(
        interface, token="s3cret", args=["--models-dir", str(models)], env=env, startup_timeout=180
    ) as srv:
        code = block("client").replace(DEFAULT_URL, srv.url)
        proc = subprocess.run(
            [str(agent_python), "-c", code],
            capture_output=True,
            text=True,
            env=_shell_env(MODEL_TOOLS_URL=srv.url, MODEL_TOOLS_TOKEN="s3cret"),
            cwd=clone / ".demo",
            timeout=120,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    similarity, dimension, raw, raw_model_id, model_id, error = proc.stdout.splitlines()
    assert 0.5 < float(similarity) < 1.0
    assert dimension == "384"
    assert raw.startswith("200 ") and raw.endswith(" ['queue', 'run']"), raw
    assert raw_model_id == model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert error == "invalid_arguments 422"


def test_the_agent_readme_runs_as_pasted_and_leaves_the_clone_clean(hand_loop: HandLoop) -> None:
    clone = hand_loop.clone
    port = _free_port()
    result = _run_shell(
        _with_port(block("agent", AGENT_README), port), clone, _shell_env(), timeout=600
    )
    assert result.returncode == 0, result.stdout
    assert "1. get_model_info() -> ModelInfo(model_id='sentence-transformers/" in result.stdout
    assert "3. compare_texts('hello', 'hi') ->" in result.stdout
    assert _wait_port_closed(port), "the server still listens after the block"
    assert _git(clone, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- the other blocks


def _example_interface(folder: Path) -> Path:
    body = block("example-interface")
    first, _, _ = body.partition("\n")
    assert first == "# experiments/my-experiment/interface.py"
    path = folder / "experiments" / "my-experiment" / "interface.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_the_example_interface_passes_lint_and_schema_as_the_readme_runs_them(
    tmp_path: Path,
) -> None:
    path = _example_interface(tmp_path)
    env = _shell_env(PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{_shell_env()['PATH']}")
    result = _run_shell(block("lint-example"), path.parent, env, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "warning" not in result.stdout and "error" not in result.stdout, result.stdout
    schema = orjson.loads(result.stdout[result.stdout.index("{") :])
    assert [f["name"] for f in schema["functions"]] == ["compare_texts"]
    assert schema["models"] == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_the_ci_and_pre_commit_snippets_pass_on_the_example_layout(tmp_path: Path) -> None:
    interface = _example_interface(tmp_path)
    env = _shell_env(PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{_shell_env()['PATH']}")
    rel = "experiments/my-experiment/interface.py"
    # The "committed" client that the drift checks compare with.
    first = _run_shell(f"scopegen build {rel} -o clients --name model_tools", tmp_path, env, 120)
    assert first.returncode == 0, first.stdout

    ci = block("ci")
    runs = re.findall(r"^\s*- run: (.+)$", ci, re.M)
    assert runs[0] == "pip install ."  # from the clone: scopegen is on no index
    assert "OWNER" not in ci and "@v0.1.0" not in ci
    for command in runs[1:]:
        result = _run_shell(command, tmp_path, env, timeout=120)
        assert result.returncode == 0, (command, result.stdout)

    hooks = block("pre-commit")
    assert "repo: local" in hooks and "OWNER" not in hooks
    entries = re.findall(r"^\s*entry: (.+?)(?:\s+#.*)?$", hooks, re.M)
    files = re.findall(r"^\s*files: (\S+)$", hooks, re.M)
    lint_files = re.compile(files[0])
    assert lint_files.search(rel) and lint_files.search("pkg/fast_interface.py")
    assert not lint_files.search("interfaces.py")
    lint = _run_shell(f"{entries[0]} {rel}", tmp_path, env, timeout=120)  # pass_filenames
    assert lint.returncode == 0, lint.stdout
    check = _run_shell(entries[1], tmp_path, env, timeout=120)
    assert check.returncode == 0, check.stdout
    # The drift check does fail when the client is stale.
    interface.write_text(interface.read_text().replace("text2: str", "other: str"))
    stale = _run_shell(entries[1], tmp_path, env, timeout=120)
    assert stale.returncode == 1, stale.stdout


def test_the_gemma_block_makes_a_model_and_serves_it(hand_loop: HandLoop) -> None:
    clone = hand_loop.clone
    make, serve = block("gemma").strip().splitlines()
    port = _free_port()
    made = _run_shell(make, clone, _shell_env(), timeout=300)
    assert made.returncode == 0, made.stdout
    serve = serve.replace("scopegen serve ", f"scopegen serve --port {port} ")
    with _process_group() as procs:
        proc = subprocess.Popen(
            ["bash", "-c", serve],
            cwd=clone,
            env=_shell_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 180
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/call/generate_text",
                    json={"prompt": "Once upon a time", "max_tokens": 3},
                    timeout=30,
                )
                break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, answer
        assert isinstance(answer.json()["result"], dict)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert _git(clone, "status", "--porcelain") == ""  # .models/ is ignored


def test_the_config_and_mcp_json_blocks_are_the_files_they_name() -> None:
    config = block("gemma-config")
    assert config.startswith("# examples/gemma/scopegen.toml\n")
    on_disk = (ROOT / "examples" / "gemma" / "scopegen.toml").read_text(encoding="utf-8")
    assert tomllib.loads(config) == tomllib.loads(on_disk)
    # What `scopegen build ... --name model_tools` writes to OUT/mcp.json.
    assert orjson.loads(block("mcp-json")) == orjson.loads(mcp_config("model_tools", "model_tools"))
    # The [[bucket_mounts]] example is a valid configuration.
    (mount,) = parse_config(tomllib.loads(block("bucket-mounts"))).bucket_mounts
    assert (mount.mount_path, mount.read_only) == ("/weights", True)
