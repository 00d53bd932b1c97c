"""Generated packages are ruff- and ``mypy --strict``-clean, and type their users' code.

Each check runs from a fresh folder with no configuration of its own, so the
tools use their defaults. User scripts are checked against the package as
pip installed in the client venv (through its ``py.typed``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen.analyze import analyze_file
from scopegen.emit import emit_client
from tests._client_ir import EDGE_INTERFACE
from tests._venvs import Venv, install_client, shared_venv

ROOT = Path(__file__).resolve().parents[2]
RICH = ROOT / "tests" / "interfaces" / "client_rich.py"
EXAMPLES = sorted(ROOT.glob("examples/*/interface.py"))
PACKAGE = "sg_rich"  # the same build as test_client_e2e: installed once per session


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", name]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYPY", "RUFF"))}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _packages() -> list[tuple[str, str, dict[str, str]]]:
    cases = [("edge", "edge", emit_client(EDGE_INTERFACE))]
    for path in [RICH, *EXAMPLES]:
        analysis = analyze_file(path)
        package = f"sg_{analysis.interface.name}"
        label = str(path.relative_to(ROOT))
        cases.append((label, package, emit_client(analysis.interface, package=package)))
    return cases


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test package written side by side into a folder with no configuration."""
    out = tmp_path_factory.mktemp("typing-build")
    for _, _, files in _packages():
        for rel, text in files.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return out


@pytest.mark.parametrize("case", [c[0] for c in _packages()])
def test_generated_package_passes_ruff_default_rules(case: str, generated: Path) -> None:
    package = next(p for label, p, _ in _packages() if label == case)
    proc = _run([*_tool("ruff"), "check", "--no-cache", package], generated)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", [c[0] for c in _packages()])
def test_generated_package_passes_mypy_strict(case: str, generated: Path, mypy_cache: Path) -> None:
    package = next(p for label, p, _ in _packages() if label == case)
    src = generated / package / "src"
    proc = _run([*_tool("mypy"), "--strict", "--cache-dir", str(mypy_cache), package], src)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- user code

GOOD = """
    import asyncio

    import sg_rich
    from sg_rich import NOT_GIVEN, AsyncClient, Client, FunctionError, RemoteError, types


    def main() -> None:
        with Client("http://127.0.0.1:8000", token="t", timeout=5.0, max_retries=1) as c:
            text: str = c.echo("hi")
            greeting: str = c.greet("Ada", punctuation=".")
            report: types.Report = c.make_report(
                "t",
                color=types.Color.BLUE,
                level=types.Level.HIGH,
                spans=[types.Span(start=0, end=1, label="x")],
                box=types.Box(width=1.0),
            )
            area: float = report.area + c.box_area(types.Box(width=2.0, height=3.0))
            first: tuple[int, int] = c.pair(1, b=2)
            opts: dict[str, int | str] = c.options("n", a=1, b="x")
            doubled: int | None = c.maybe(None)
            schema: str = c.meta().schema_
            c.fail("boom")
            print(text, greeting, area, first, opts, doubled, schema)
            # Fields the server may leave out: left out here too, typed as the wire's.
            span = types.Span(start=0, end=1)
            tags: list[str] = types.Box(width=1.0).tags
            raw = c.with_raw_response.pair(1)
            parsed: tuple[int, int] = raw.parse()
            rid: str = raw.request_id
            timing: dict[str, float] = raw.server_timing
            quick: str = c.with_options(timeout=3.0, max_retries=0, headers={"x": "y"}).echo("x")
            print(span, tags, parsed, rid, timing, quick, raw.status_code)
        reply: str = sg_rich.greet("Bo", greeting=NOT_GIVEN)
        print(reply, sg_rich.stats([1.0, 2.0])["n"])
        try:
            sg_rich.nap(1.0)
        except FunctionError as exc:
            print(exc.remote_type, exc.remote_traceback)
        except RemoteError as exc:
            print(exc.code, exc.status, exc.request_id)


    async def amain() -> int:
        async with AsyncClient() as ac:
            total: int = await ac.slow_add(1, 2, delay=0.1)
            both = await asyncio.gather(ac.echo("a"), ac.pair(3))
            return total + len(both[0]) + both[1][0]
"""

BAD = {
    "wrong_argument_type": (
        "sg_rich.echo(5)",
        r'Argument 1 to "echo" has incompatible type "int"; expected "str"',
    ),
    "bad_literal": (
        'sg_rich.greet("Ada", punctuation="?")',
        r'Argument "punctuation" to "greet" has incompatible type "Literal\[\'\?\'\]"',
    ),
    "wrong_enum": (
        'sg_rich.make_report("t", color="red")',
        r'Argument "color" to "make_report" has incompatible type "str"; expected "Color"',
    ),
    "wrong_return_use": (
        "sg_rich.pair(1).upper()",
        r'"tuple\[int, int\]" has no attribute "upper"',
    ),
    "wrong_return_type": (
        "x: str = sg_rich.slow_add(1, 2)",
        r'Incompatible types in assignment \(expression has type "int", variable has type "str"\)',
    ),
    "unknown_keyword": (
        'sg_rich.echo("x", txt="y")',
        r'Unexpected keyword argument "txt" for "echo"',
    ),
    "wrong_model_field": (
        'sg_rich.types.Box(width="wide")',
        r'Argument "width" to "Box" has incompatible type "str"; expected "float"',
    ),
    "none_for_a_field_that_may_be_absent": (
        "sg_rich.types.Span(start=0, end=1, label=None)",
        r'Argument "label" to "Span" has incompatible type "None"; expected "str"',
    ),
    "none_for_a_list_that_may_be_absent": (
        "sg_rich.types.Box(width=1.0, tags=None)",
        r'Argument "tags" to "Box" has incompatible type "None"; expected "list\[str\]"',
    ),
    "raw_response_is_not_the_result": (
        'x: str = sg_rich.Client().with_raw_response.echo("a")',
        r'expression has type "RawResponse\[str\]", variable has type "str"',
    ),
    "missing_await": (
        "async def f(ac: sg_rich.AsyncClient) -> int:\n    return ac.slow_add(1, 2)",
        r'Incompatible return value type \(got "Coroutine\[Any, Any, int\]", expected "int"\)',
    ),
}


@pytest.fixture(scope="module")
def user_check(
    tmp_path_factory: pytest.TempPathFactory, mypy_cache: Path
) -> dict[str, tuple[int, str]]:
    """mypy --strict over the good script and every bad one, against the installed package.

    One mypy run for all scripts (it is the slow part); each test reads its own result.
    """
    venv: Venv = shared_venv(tmp_path_factory)
    install_client(venv, RICH, PACKAGE, tmp_path_factory)
    folder = tmp_path_factory.mktemp("user-scripts")
    (folder / "good.py").write_text(textwrap.dedent(GOOD), encoding="utf-8")
    for name, (line, _) in BAD.items():
        (folder / f"{name}.py").write_text(f"import sg_rich\n\n{line}\n", encoding="utf-8")
    results: dict[str, tuple[int, str]] = {}
    for script in sorted(folder.glob("*.py")):
        proc = _run(
            [
                *_tool("mypy"),
                "--strict",
                "--cache-dir",
                str(mypy_cache),
                "--python-executable",
                str(venv.python),
                script.name,
            ],
            folder,
        )
        results[script.stem] = (proc.returncode, proc.stdout + proc.stderr)
    shutil.rmtree(folder / ".mypy_cache", ignore_errors=True)
    return results


def test_correct_user_code_passes_mypy_strict(user_check: dict[str, tuple[int, str]]) -> None:
    code, out = user_check["good"]
    assert code == 0, out


@pytest.mark.parametrize("name", sorted(BAD))
def test_wrong_user_code_is_rejected_by_mypy(
    name: str, user_check: dict[str, tuple[int, str]]
) -> None:
    code, out = user_check[name]
    assert code == 1, out
    assert re.search(BAD[name][1], out), out


TENSORS = ROOT / "tests" / "interfaces" / "tensor_echo.py"
TENSOR_USER = """
import numpy as np
import torch
from numpy.typing import NDArray

import sg_tensor_typing as tools

# Tensor parameters take numpy arrays and anything numpy can read (a torch tensor
# on any device, through __array__ / DLPack); results are numpy arrays.
x: NDArray[np.float32] = tools.add_float32(torch.ones(3), np.ones(3, dtype=np.float32))
y = tools.echo_torch(torch.zeros(2, requires_grad=True))
z: NDArray[np.float32] = tools.add_float32(x, y)
"""


def test_tensor_parameters_accept_torch_tensors_and_refuse_other_values(
    tmp_path: Path, mypy_cache: Path
) -> None:
    analysis = analyze_file(TENSORS)
    for rel, text in emit_client(analysis.interface, package="sg_tensor_typing").items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    src = next(tmp_path.glob("*/src"))
    (src / "good_user.py").write_text(TENSOR_USER, encoding="utf-8")
    (src / "bad_user.py").write_text(
        'import sg_tensor_typing as tools\n\ntools.echo_torch("not an array")\n', encoding="utf-8"
    )
    cmd = [*_tool("mypy"), "--strict", "--cache-dir", str(mypy_cache)]
    good = _run([*cmd, "good_user.py"], src)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _run([*cmd, "bad_user.py"], src)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'incompatible type "str"' in bad.stdout, bad.stdout
