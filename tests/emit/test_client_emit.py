"""The client emitter as a function: IR in, file texts out (no server, no install)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from scopegen.analyze import analyze_file
from scopegen.emit import EmitError, emit_client
from scopegen.emit._templates import load_template, templates_root
from scopegen.emit.client import header_text, validate_package_name
from scopegen.protocol import CLIENT_RESERVED_FUNCTION_NAMES
from scopegen.spec import STR, Function, Interface, Parameter
from tests._client_ir import EDGE_INTERFACE

ROOT = Path(__file__).resolve().parents[2]
RICH = ROOT / "tests" / "interfaces" / "client_rich.py"

EXPECTED_FILES = {
    "edge/README.md",
    "edge/pyproject.toml",
    "edge/src/edge/README.md",
    "edge/src/edge/__init__.py",
    "edge/src/edge/_base_client.py",
    "edge/src/edge/_client.py",
    "edge/src/edge/_exceptions.py",
    "edge/src/edge/_streaming.py",
    "edge/src/edge/py.typed",
    "edge/src/edge/types.py",
}


def _write(files: dict[str, str], out: Path) -> Path:
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return out


def test_package_layout_is_a_src_project_with_private_modules() -> None:
    assert set(emit_client(EDGE_INTERFACE)) == EXPECTED_FILES


def test_every_file_starts_with_the_do_not_edit_header_naming_source_and_hash() -> None:
    header = header_text("edge_interface.py", EDGE_INTERFACE.hash)
    for rel, text in emit_client(EDGE_INTERFACE).items():
        first = text.splitlines()[0]
        marker = "<!-- " if rel.endswith(".md") else "# "
        assert first.startswith(marker + header), (rel, first)
        assert "Do not edit" in first and EDGE_INTERFACE.hash in first


def test_output_is_deterministic_and_free_of_paths_and_times(tmp_path: Path) -> None:
    first = emit_client(EDGE_INTERFACE)
    again = emit_client(dataclasses.replace(EDGE_INTERFACE))
    assert first == again
    blob = "\n".join(first.values())
    assert str(ROOT) not in blob and "/tmp" not in blob and str(Path.home()) not in blob
    assert list(first) == sorted(first)


def test_generated_python_compiles() -> None:
    for rel, text in emit_client(EDGE_INTERFACE).items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")


def test_pyproject_declares_only_httpx_pydantic_orjson_with_upper_bounds() -> None:
    import tomllib

    data = tomllib.loads(emit_client(EDGE_INTERFACE)["edge/pyproject.toml"])
    project = data["project"]
    assert project["name"] == "edge"
    assert project["requires-python"] == ">=3.10"
    deps = project["dependencies"]
    assert sorted(d.split(">")[0] for d in deps) == ["httpx", "orjson", "pydantic"]
    assert all("<" in d for d in deps), deps
    assert "pydantic>=2" in " ".join(deps)
    assert data["build-system"]["build-backend"] == "hatchling.build"


def test_signatures_keep_names_kinds_literal_defaults_and_sentinels(tmp_path: Path) -> None:
    src = _write(emit_client(EDGE_INTERFACE), tmp_path) / "edge" / "src"
    code = (
        "import inspect, edge\n"
        "for name in ('weird', 'mixed'):\n"
        "    print(name, inspect.signature(getattr(edge, name)))\n"
        "print(inspect.signature(edge.Client.weird))\n"
        "print(repr(edge.weird.__doc__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=src, capture_output=True, text=True, check=True
    ).stdout
    assert (
        "weird (self: 'int', l: 'int', _args: 'str', node: 'types.Node | NotGiven' = NOT_GIVEN, "
        "mode: \"Literal['a', 'b']\" = 'a', level: 'types.Level' = <Level.HIGH: 2>, "
        "point: 'tuple[int, int]' = (1, 2), tags: 'list[str] | NotGiven' = NOT_GIVEN, "
        "n: 'int | None' = None, server_side: 'float | NotGiven' = NOT_GIVEN, *, "
        "kw: 'float' = 1, flag: 'bool', **rest: 'Any') -> 'dict[str, list[types.Tree | None]]'"
    ) in out
    assert "mixed (v: \"Literal[1, True, 's'] | None\" = True)" in out
    # The receiver is renamed when a parameter is called ``self``.
    assert "(self_, self: 'int', l: 'int'" in out
    assert repr(inspect.cleandoc(EDGE_INTERFACE.functions[0].doc or "")) in out


def test_models_alias_fields_that_would_shadow_pydantic_attributes(tmp_path: Path) -> None:
    src = _write(emit_client(EDGE_INTERFACE), tmp_path) / "edge" / "src"
    code = (
        "from edge import types\n"
        "from edge._base_client import _encode_default\n"
        "wire = {'json': 1, 'model_config': 'x', '_hidden': True, 'class': 'c',"
        " 'tree': {'value': 1, 'children': [{'value': 2}]}}\n"
        "node = types.Node.model_validate(wire)\n"
        "assert (node.json_, node.model_config_, node.hidden, node.class_) == (1, 'x', True, 'c')\n"
        "assert node.tree.children[0].value == 2 and node.level is types.Level.HIGH\n"
        "assert _encode_default(node) == wire, _encode_default(node)\n"
        "assert _encode_default(types.Node(json=2, model_config='y')) == "
        "{'json': 2, 'model_config': 'y'}\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=src, check=True)


def test_readme_lists_every_function_with_signature_types_and_docstring() -> None:
    analysis = analyze_file(RICH)
    readme = emit_client(analysis.interface, package="sg_rich")["sg_rich/README.md"]
    for fn in analysis.interface.functions:
        assert f"### `{fn.name}`" in readme
        assert f"def {fn.name}(" in readme
        if fn.doc:
            assert inspect.cleandoc(fn.doc).splitlines()[0] in readme
    for td in analysis.interface.types:
        assert f"### `{td.name}`" in readme
    assert "greeting: str | NotGiven = NOT_GIVEN" in readme
    assert "server default `DEFAULT_GREETING`" in readme
    assert "SG_RICH_URL" in readme and "SCOPEGEN_URL" in readme
    assert "InvalidArguments" in readme and "ConnectionFailed" in readme
    assert "import sg_rich" in readme


@pytest.mark.parametrize("name", ["Client", "close", "types", "InvalidArguments", "dict"])
def test_function_names_the_package_reserves_are_refused(name: str) -> None:
    assert name in CLIENT_RESERVED_FUNCTION_NAMES
    interface = Interface("pkg", (Function(name, (Parameter("x", STR),), STR),))
    with pytest.raises(EmitError, match="reserved"):
        emit_client(interface)


@pytest.mark.parametrize(
    "name", ["Model-Tools", "json", "typing", "httpx", "class", "1abc", "a.b", ""]
)
def test_package_names_that_cannot_work_are_refused(name: str) -> None:
    assert validate_package_name(name) is not None
    with pytest.raises(EmitError):
        emit_client(EDGE_INTERFACE, package=name or "!")


def test_reserved_names_cover_every_public_name_of_the_package() -> None:
    init = emit_client(EDGE_INTERFACE)["edge/src/edge/__init__.py"]
    tree = ast.parse(init)
    exported = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "__all__"
    )
    assert isinstance(exported, ast.List)
    names = {elt.value for elt in exported.elts if isinstance(elt, ast.Constant)}
    functions = {fn.name for fn in EDGE_INTERFACE.functions}
    assert names - functions <= CLIENT_RESERVED_FUNCTION_NAMES


def test_templates_load_from_the_checkout() -> None:
    assert templates_root() == ROOT / "templates"
    assert "$header" in load_template("client/src/_base_client.py.tmpl").template


def test_redirect_and_retry_rules_are_protocols_own_source() -> None:
    # One source for the client and the MCP bridge (which imports these functions).
    from scopegen import protocol

    base = emit_client(EDGE_INTERFACE)["edge/src/edge/_base_client.py"]
    for fn in (protocol.origin, protocol.next_hop, protocol.retry_delay):
        assert inspect.getsource(fn) in base, fn.__name__
    # The constants they read exist under the same names, with the protocol's values.
    for name in ("MAX_RETRY_AFTER", "MAX_RETRY_DELAY", "INITIAL_RETRY_DELAY", "RETRY_JITTER"):
        assert f"{name}: Final = {getattr(protocol, name)!r}" in base
