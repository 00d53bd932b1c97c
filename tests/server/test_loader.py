"""The one executor: a start-up load (the whole file) and per-statement runs behave alike.

Interface files are written to ``tmp_path`` and executed in this process;
the ``isolated`` fixture undoes what that does to ``sys.modules`` and
``sys.path``.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen import runtime
from scopegen.analyze import analyze_file, module_units
from scopegen.server import (
    InterfaceImportError,
    InterfaceMismatchError,
    compile_units,
    execute,
    load_interface,
)

ROOT = Path(__file__).resolve().parents[2]


EXPOSED = "\n\n@expose\ndef f() -> int:\n    return 1\n"


def _write(tmp_path: Path, name: str, src: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(src))
    return p


def test_nothing_in_the_server_parses_source() -> None:
    # The analyzer parses (once, with libcst); the server compiles and runs.
    found = []
    for path in sorted((ROOT / "scopegen" / "server").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ("ast.parse(", "parse_module(", "parse_expression(", "parse_statement("):
            if needle in text:
                found.append(f"{path.name}: {needle}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            parsers = [n for n in names if n.split(".")[0] in ("ast", "libcst")]
            found += [f"{path.name}: import {n}" for n in parsers]
    assert found == []


def test_a_failing_file_s_traceback_starts_in_the_file(tmp_path: Path, isolated: None) -> None:
    src = 'X = 1\n\n\ndef boom() -> None:\n    raise KeyError("oops")\n\n\nboom()\n' + EXPOSED
    iface = _write(tmp_path, "loader_raises.py", src)
    with pytest.raises(InterfaceImportError) as info:
        load_interface(iface)
    text = info.value.traceback_text
    assert text.splitlines()[1].startswith(f'  File "{iface.resolve()}", line 8, in <module>')
    assert f'"{iface.resolve()}", line 5, in boom' in text
    assert "_loader.py" not in text and "importlib" not in text
    assert "loader_raises" not in sys.modules


def test_a_statement_that_cpython_refuses_runs_nothing(tmp_path: Path, isolated: None) -> None:
    # libcst (and so the analyzer) accepts a module-level ``return``; CPython does not.
    marker = tmp_path / "ran.txt"
    src = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nreturn 1\n"
    iface = _write(tmp_path, "loader_refused.py", src + EXPOSED)
    analysis = analyze_file(iface)
    assert analysis.ok
    with pytest.raises(InterfaceImportError, match="'return' outside function"):
        load_interface(analysis)
    with pytest.raises(InterfaceImportError, match="'return' outside function"):
        compile_units(analysis, module_units(analysis))
    assert not marker.exists()


SEMANTICS = '''\
"""The module docstring."""
from __future__ import annotations

import itertools

COUNTER = itertools.count()
model = ("loaded", next(COUNTER))


def helper(x: NotDefinedAnywhere) -> None:  # fine: annotations are strings
    pass

"a lone string statement"


@expose
def which() -> str:
    return f"{model[0]} {model[1]}"
'''


def test_statement_by_statement_runs_like_the_whole_file(tmp_path: Path, isolated: None) -> None:
    iface = _write(tmp_path, "loader_units.py", SEMANTICS)
    analysis = analyze_file(iface)
    whole = execute(analysis, compile_units(analysis)).loaded
    units = module_units(analysis)
    split = execute(analysis, compile_units(analysis, units)).loaded
    for loaded in (whole, split):
        assert loaded.module.__doc__ == "The module docstring."
        assert loaded.module.helper.__annotations__["x"] == "NotDefinedAnywhere"
        assert loaded.functions["which"]() == "loaded 0"
        assert loaded.analysis.module is None  # the parse tree is not kept
    assert whole.module is not split.module
    assert sys.modules["loader_units"] is split.module


def test_kept_values_are_put_back_instead_of_running(tmp_path: Path, isolated: None) -> None:
    iface = _write(tmp_path, "loader_kept.py", SEMANTICS)
    analysis = analyze_file(iface)
    units = module_units(analysis)
    (i,) = [u.index for u in units if u.binds == {"model"}]
    kept = {i: {"model": ("kept", 41)}}
    run = execute(analysis, compile_units(analysis, units, keep=kept), kept, snapshot={i})
    assert run.loaded.functions["which"]() == "kept 41"
    assert run.snapshots == {i: {"model": ("kept", 41)}}
    # The statement did not run: the counter it would have advanced did not move.
    assert next(run.loaded.module.COUNTER) == 0


def test_a_mismatch_leaves_sys_modules_and_the_registry_as_they_were(
    tmp_path: Path, isolated: None
) -> None:
    iface = _write(tmp_path, "loader_mismatch.py", "@expose\ndef f() -> int:\n    return 1\n")
    served = load_interface(iface)
    registry = runtime._registry
    iface.write_text("@expose\ndef f() -> int:\n    return 2\n\n\nif False:\n    @expose\n"
                     "    def g() -> int:\n        return 3\n")  # fmt: skip
    with pytest.raises(InterfaceMismatchError, match="not exposed when the file ran: g"):
        load_interface(iface)
    assert sys.modules["loader_mismatch"] is served.module
    assert runtime._registry is registry
