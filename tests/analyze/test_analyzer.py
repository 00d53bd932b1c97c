"""The analyzer: IR extraction, decorator spellings, annotations, seed examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scopegen import spec
from scopegen.analyze import analyze_file, analyze_source, default_interface_name
from scopegen.emit.schema import manifest

HERE = Path(__file__).resolve().parents[1]
SEED = Path(__file__).resolve().parents[3] / "shared" / "SEED-scoped-sandbox.md"


def codes(source: str) -> list[str]:
    return [d.code for d in analyze_source(source).diagnostics]


@pytest.mark.parametrize(
    "header, decorator",
    [
        ("", "expose"),
        ("from scopegen import expose\n", "expose"),
        ("import scopegen\n", "scopegen.expose"),
        ("import scopegen as sg\n", "sg.expose"),
        ("from scopegen import expose as rpc\n", "rpc"),
    ],
)
def test_decorator_spellings_are_resolved_by_qualified_name(header: str, decorator: str) -> None:
    a = analyze_source(f"{header}@{decorator}\ndef f(x: int) -> int:\n    return x\n")
    assert [f.name for f in a.interface.functions] == ["f"]
    assert a.ok


def test_a_foreign_expose_is_not_ours() -> None:
    a = analyze_source("from other import expose\n@expose\ndef f(x: int) -> int:\n    return x\n")
    assert a.interface.functions == ()
    assert "SG012" in [d.code for d in a.diagnostics]


def test_string_and_future_annotations_convert() -> None:
    src = (
        "from __future__ import annotations\n"
        "@expose\ndef f(x: 'list[int]', y: dict[str, float] | None = None) -> 'str':\n"
        "    return ''\n"
    )
    fn = analyze_source(src).interface.functions[0]
    assert fn.params[0].type == spec.ListType(spec.INT)
    assert fn.params[1].type == spec.UnionType((spec.DictType(spec.FLOAT), spec.NONE))
    assert fn.returns == spec.STR


def test_type_aliases_resolve() -> None:
    src = (
        "from typing import TypeAlias\nVec = list[float]\nMat: TypeAlias = list[Vec]\n"
        "@expose\ndef f(m: Mat) -> Vec:\n    return m[0]\n"
    )
    fn = analyze_source(src).interface.functions[0]
    assert fn.params[0].type == spec.ListType(spec.ListType(spec.FLOAT))
    assert fn.returns == spec.ListType(spec.FLOAT)


def test_rich_types_manifest() -> None:
    a = analyze_file(HERE / "interfaces" / "rich_types.py")
    assert a.ok, a.diagnostics
    iface = a.interface
    assert [t.name for t in iface.types] == ["Box", "Color", "Doc", "Priority", "Span"]
    assert iface.model_ids == ("org/rich-model",)
    m = manifest(iface)
    fns = {f["name"]: f for f in m["functions"]}
    assert set(fns) == {
        "echo",
        "scale",
        "classify",
        "make_doc",
        "pair",
        "options",
        "annotated",
        "nothing",
    }
    assert fns["echo"]["doc"] == "Return the text unchanged."
    scale = fns["scale"]["parameters"]
    # A non-literal default is not in the schema and not required.
    assert scale["required"] == ["xs"] and "default" not in scale["properties"]["factor"]
    assert scale["properties"]["clip"] == {"type": "boolean", "default": False}
    classify = fns["classify"]["parameters"]
    assert classify["properties"]["mode"] == {"enum": ["fast", "slow"], "default": "fast"}
    assert classify["properties"]["color"] == {"$ref": "#/$defs/Color", "default": "green"}
    assert classify["properties"]["priority"]["default"] == 1
    assert classify["$defs"]["Priority"]["enum"] == [1, 2]
    doc = fns["make_doc"]
    assert doc["returns"]["$ref"] == "#/$defs/Doc"
    assert set(doc["returns"]["$defs"]) == {"Doc", "Span", "Box", "Color"}
    assert doc["returns"]["$defs"]["Span"]["required"] == ["start", "end"]
    assert doc["returns"]["$defs"]["Box"]["required"] == ["width"]
    assert fns["pair"]["async"] is True
    assert fns["pair"]["returns"]["prefixItems"] == [{"type": "integer"}] * 2
    assert fns["options"]["parameters"]["additionalProperties"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }
    assert fns["nothing"]["returns"] == {"type": "null"}
    assert re.fullmatch(r"[0-9a-f]{16}", m["hash"])


def test_hash_ignores_bodies_and_follows_signatures() -> None:
    a = analyze_source("@expose\ndef f(x: int) -> int:\n    return x\n").interface.hash
    b = analyze_source("@expose\ndef f(x: int) -> int:\n    return x + 1\n").interface.hash
    c = analyze_source("@expose\ndef f(x: float) -> int:\n    return 1\n").interface.hash
    assert a == b != c


def test_model_ids_collected_in_order_without_duplicates() -> None:
    src = (
        "a = get_model_path('org/a')\nb = get_model_path(model_id='org/b')\n"
        "c = get_model_path('org/a')\n@expose\ndef f() -> str:\n    return a\n"
    )
    assert analyze_source(src).interface.model_ids == ("org/a", "org/b")


def test_noqa_silences_one_code_or_all() -> None:
    base = "@expose\ndef f(x: str = None) -> str:{}\n    return ''\n"
    assert "SG007" in codes(base.format(""))
    assert "SG007" not in codes(base.format("  # noqa: SG007"))
    assert "SG007" in codes(base.format("  # noqa: SG010"))
    assert "SG007" not in codes(base.format("  # noqa"))


def test_syntax_error_is_sg000_with_cpython_position() -> None:
    a = analyze_source("x = 1\n@expose\ndef f(:\n    pass\n")
    assert [(d.code, d.line) for d in a.diagnostics] == [("SG000", 3)]
    assert "syntax" in a.diagnostics[0].message.lower()


def test_implicit_optional_widens_client_type() -> None:
    fn = analyze_source(
        "@expose\ndef f(x: str = None) -> str:\n    return ''\n"
    ).interface.functions[0]
    assert fn.params[0].type == spec.UnionType((spec.STR, spec.NONE))


def test_enum_default_and_recursive_model() -> None:
    src = (
        "from pydantic import BaseModel\nclass Node(BaseModel):\n    name: str\n"
        "    children: list['Node'] = []\n@expose\ndef f(n: Node) -> Node:\n    return n\n"
    )
    a = analyze_source(src)
    assert a.ok and a.interface.types[0].name == "Node"


def test_unresolved_type_is_any_with_warning() -> None:
    a = analyze_source("from lib import R\n@expose\ndef f() -> R:\n    return R()\n")
    assert a.interface.functions[0].returns == spec.ANY
    assert [d.code for d in a.diagnostics] == ["SG013"]
    assert a.ok


def test_tensors_are_wire_types_alone_and_nested() -> None:
    src = (
        "import numpy as np\nimport ml_dtypes\nimport torch\n"
        "from typing import Any, TypedDict\nfrom numpy.typing import NDArray\n"
        "class R(TypedDict):\n    h: torch.Tensor\n"
        "@expose\ndef f(a: torch.Tensor, b: np.ndarray, c: NDArray[np.float32],\n"
        "      d: 'NDArray[ml_dtypes.bfloat16]', e: NDArray[np.bool_], g: NDArray[Any],\n"
        "      h: np.ndarray[Any, np.dtype[np.int8]]) -> list[R]:\n    return []\n"
    )
    a = analyze_source(src)
    assert a.diagnostics == ()
    fn = a.interface.functions[0]
    assert [p.type for p in fn.params] == [
        spec.TensorType("torch"),
        spec.TensorType("numpy"),
        spec.TensorType("numpy", "float32"),
        spec.TensorType("numpy", "bfloat16"),
        spec.TensorType("numpy", "bool"),
        spec.TensorType("numpy"),
        spec.TensorType("numpy", "int8"),
    ]
    (r,) = a.interface.types
    assert isinstance(r, spec.ObjectDef) and r.fields[0].type == spec.TensorType("torch")


def test_a_tensor_dtype_that_does_not_cross_the_wire_is_sg003() -> None:
    src = (
        "import numpy as np\nfrom numpy.typing import NDArray\n"
        "@expose\ndef f() -> NDArray[np.complex64]:\n    return np.zeros(1)\n"
    )
    (d,) = analyze_source(src).diagnostics
    assert d.code == "SG003" and "np.complex64" in d.message and "float32" in d.message


def test_other_torch_types_get_a_hint_that_names_tensors() -> None:
    a = analyze_source("import torch\n@expose\ndef f() -> torch.nn.Module:\n    return 1\n")
    (d,) = a.diagnostics
    assert d.code == "SG003" and "torch.Tensor" in d.message and (d.line, d.column) == (3, 12)


def test_default_interface_name() -> None:
    assert default_interface_name("examples/embeddings/interface.py") == "embeddings"
    assert default_interface_name("x/model_interface.py") == "model"
    assert default_interface_name("x/My-Tools.py") == "my_tools"


def _seed_blocks() -> list[str]:
    text = SEED.read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.skipif(not SEED.exists(), reason="shared/ not beside the checkout")
def test_seed_complete_example_lints_clean() -> None:
    complete = next(b for b in _seed_blocks() if "experiments/my-experiment/interface.py" in b)
    a = analyze_source(complete)
    assert a.diagnostics == ()
    assert [f.name for f in a.interface.functions] == [
        "get_model_info",
        "generate_text",
        "compare_texts",
    ]
    assert a.interface.model_ids == ("google/gemma-2-9b",)


@pytest.mark.skipif(not SEED.exists(), reason="shared/ not beside the checkout")
def test_seed_bad_examples_are_flagged() -> None:
    blocks = _seed_blocks()
    # DESIGN.md §8 made tensors wire types: the seed's "bad" tensor return is fine now.
    tensor = next(b for b in blocks if "-> torch.Tensor" in b)
    assert "SG003" not in codes("import torch\n" + tensor.split("# GOOD")[0])
    reload_ = next(b for b in blocks if "# BAD - reloading" in b)
    bad = reload_.split("# BAD - reloading on every call")[1]
    assert "SG010" in codes(bad)
