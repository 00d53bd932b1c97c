"""`scopegen lint` / `scopegen schema` as a user runs them: formats, exit codes, walking."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scopegen.analyze.rules import RULES

HERE = Path(__file__).resolve().parents[1]
BAD = (
    "import torch\n"
    "@expose\n"
    "def f(x, y: int = '5') -> torch.nn.Module:\n"
    "    return torch.zeros(1)\n"
    "@expose\n"
    "def g(s: str = None) -> str:\n"
    "    return s or ''\n"
)
WARN_ONLY = "@expose\ndef g(s: str = None) -> str:\n    return s or ''\n"
CLEAN = "@expose\ndef g(s: str) -> str:\n    return s\n"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scopegen", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    p = tmp_path / "interface.py"
    p.write_text(BAD)
    return p


def test_text_format_shows_location_code_and_source_line(bad: Path) -> None:
    r = run("lint", str(bad))
    assert r.returncode == 1
    assert f"{bad}:3:7: SG001" in r.stdout
    assert "def f(x, y: int = '5') -> torch.nn.Module:" in r.stdout
    assert "Found 3 errors and 1 warning in 1 file." in r.stdout


def test_json_format_is_exact(bad: Path) -> None:
    r = run("lint", str(bad), "--format", "json")
    data = json.loads(r.stdout)
    assert {tuple(sorted(d)) for d in data} == {
        ("code", "column", "end_column", "end_line", "line", "message", "path", "severity")
    }
    assert [(d["code"], d["line"], d["severity"]) for d in data] == [
        ("SG001", 3, "error"),
        ("SG006", 3, "error"),
        ("SG003", 3, "error"),
        ("SG007", 6, "warning"),
    ]
    sg003 = next(d for d in data if d["code"] == "SG003")
    assert (sg003["column"], sg003["end_column"]) == (27, 42)


def test_github_format_is_workflow_commands(bad: Path) -> None:
    r = run("lint", str(bad), "--format", "github")
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(f"::error file={bad},line=3,col=7,")
    assert "title=SG001::SG001 " in lines[0]
    assert any(line.startswith("::warning ") and "title=SG007" in line for line in lines)


def test_sarif_format_structure(bad: Path) -> None:
    r = run("lint", str(bad), "--format", "sarif")
    doc = json.loads(r.stdout)
    assert doc["version"] == "2.1.0"
    (run_,) = doc["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert [x["id"] for x in rules] == [r.CODE for r in RULES]  # the whole catalog, in order
    assert {"SG000", "SG013", "SG015"} <= {x["id"] for x in rules}
    for res in run_["results"]:
        assert res["ruleId"] in {x["id"] for x in rules}
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in {"error", "warning"}
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    assert {r_["ruleId"] for r_ in run_["results"]} == {"SG001", "SG003", "SG006", "SG007"}


def test_exit_codes(tmp_path: Path) -> None:
    warn = tmp_path / "w_interface.py"
    warn.write_text(WARN_ONLY)
    clean = tmp_path / "c_interface.py"
    clean.write_text(CLEAN)
    assert run("lint", str(clean)).returncode == 0
    assert run("lint", str(warn)).returncode == 0
    assert run("lint", "--strict", str(warn)).returncode == 1
    missing = run("lint", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert run("lint", str(clean), "--format", "xml").returncode == 2


def test_directories_are_walked_for_interface_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "interface.py").write_text(CLEAN)
    (tmp_path / "b_interface.py").write_text(WARN_ONLY)
    (tmp_path / "helper.py").write_text("def (:\n")  # not an interface: not linted
    r = run("lint", str(tmp_path), "--format", "json")
    assert r.returncode == 0
    assert {Path(d["path"]).name for d in json.loads(r.stdout)} == {"b_interface.py"}


def test_syntax_error_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    p = tmp_path / "interface.py"
    p.write_text("@expose\ndef f(x: int) -> int\n    return x\n")
    r = run("lint", str(p))
    assert r.returncode == 1 and "SG000" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_lint_imports_nothing_heavy_and_not_the_interface(tmp_path: Path) -> None:
    p = tmp_path / "interface.py"
    p.write_text("import torch\nraise SystemExit('imported!')\n" + CLEAN)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['scopegen', 'lint', {str(p)!r}]\n"
        "try:\n    runpy.run_module('scopegen', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'modal', 'uvicorn', 'numpy') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_schema_prints_the_manifest() -> None:
    r = run("schema", str(HERE / "interfaces" / "rich_types.py"))
    assert r.returncode == 0
    m = json.loads(r.stdout)
    assert m["name"] == "rich_types" and len(m["functions"]) == 8


def test_schema_refuses_a_file_with_errors(bad: Path) -> None:
    r = run("schema", str(bad))
    assert r.returncode == 1 and "SG001" in r.stderr


def test_version_option() -> None:
    from scopegen import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"scopegen {__version__}"


def test_lint_takes_the_light_path_without_typer_rich_or_pydantic(tmp_path: Path) -> None:
    p = tmp_path / "interface.py"
    p.write_text(CLEAN)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['scopegen', 'lint', {str(p)!r}]\n"
        "try:\n    runpy.run_module('scopegen', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "loaded = [m for m in ('typer', 'click', 'rich', 'pydantic', 'importlib.metadata') "
        "if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in r.stdout, r.stdout + r.stderr


def test_lint_help_and_the_typer_entry_point_agree(tmp_path: Path) -> None:
    r = run("lint", "--help")
    assert r.returncode == 0
    assert "--format" in r.stdout and "--strict" in r.stdout and "PATH" in r.stdout
    assert "lint" in run("--help").stdout  # still listed among the commands
    warn = tmp_path / "w_interface.py"
    warn.write_text(WARN_ONLY)
    # The typer app (scopegen.cli.main) hands lint to the same command line.
    argv = ["scopegen", "lint", "--strict", str(warn)]
    code = f"import sys\nfrom scopegen.cli import main\nsys.argv = {argv!r}\nmain()"
    typer_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert typer_run.returncode == 1
    assert f"{warn}:2:7: SG007" in typer_run.stdout
    assert run("lint", "--no-strict", str(warn)).returncode == 0


def test_text_report_is_coloured_only_when_asked(bad: Path) -> None:
    def lint(**env: str) -> str:
        full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        out = subprocess.run(
            [sys.executable, "-m", "scopegen", "lint", str(bad)],
            capture_output=True,
            text=True,
            env={**full, **env},
        )
        return out.stdout

    plain = lint()
    assert "\x1b[" not in plain  # not a terminal
    coloured = lint(FORCE_COLOR="1")
    assert "\x1b[1m\x1b[31mSG001\x1b[0m" in coloured  # the code, bold red for an error
    assert "\x1b[" not in lint(FORCE_COLOR="1", NO_COLOR="1")
    # Without the escapes, the same report.
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
