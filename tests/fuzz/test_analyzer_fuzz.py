"""The analyzer never raises, whatever the input: generated programs and mutations.

Bounded here; `make fuzz` runs the same properties with many more examples
(SCOPEGEN_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
from pathlib import Path

import hypothesmith
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopegen.analyze import analyze_source
from scopegen.emit.schema import manifest_json

EXAMPLES = int(os.environ.get("SCOPEGEN_FUZZ_EXAMPLES", "60"))
ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(
    p.read_text()
    for p in [*ROOT.glob("examples/*/interface.py"), *(ROOT / "tests" / "interfaces").glob("*.py")]
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # Generated programs are large and slow by nature; that is the point here.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def _check(source: str) -> None:
    a = analyze_source(source, "fuzz_interface.py")
    for d in a.diagnostics:
        assert d.code.startswith("SG") and d.line >= 1 and d.column >= 1
        assert "internal analyzer error" not in d.message, d.message
    # The IR of whatever parsed must serialise.
    manifest_json(a.interface)


@FUZZ
@given(hypothesmith.from_grammar())
def test_generated_programs_never_crash_the_analyzer(source: str) -> None:
    _check(source)


@FUZZ
@given(hypothesmith.from_node())
def test_generated_syntax_trees_never_crash_the_analyzer(source: str) -> None:
    _check(source)


_DECORATORS = ["@expose", "@sg.expose", "@rpc", "@expose()", "@staticmethod", "@x.y.z", ""]
_ANNOTATIONS = [
    "int",
    "list[float]",
    "torch.Tensor",
    "'str'",
    "dict[int, str]",
    "Literal[1, 'a']",
    "Optional[",
    "X | None",
    "tuple[int, ...]",
    "set[int]",
    "Annotated[int]",
    "Color",
]


@FUZZ
@given(st.data())
def test_mutated_interfaces_never_crash_the_analyzer(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(SEEDS)) if SEEDS else "@expose\ndef f() -> int: ...\n"
    tokens = source.split(" ")
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["delete", "annotation", "decorator", "swap"]))
        i = data.draw(st.integers(0, max(0, len(tokens) - 1)))
        if op == "delete" and tokens:
            del tokens[i]
        elif op == "annotation":
            tokens.insert(i, data.draw(st.sampled_from(_ANNOTATIONS)))
        elif op == "decorator":
            tokens.insert(i, "\n" + data.draw(st.sampled_from(_DECORATORS)) + "\n")
        elif tokens:
            j = data.draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    _check(" ".join(tokens))
