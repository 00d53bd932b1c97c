"""Per-statement facts (``module_units``): what ``serve --reload`` reads instead of parsing.

Each test states one property of a unit (kind, line, names, loads, digest)
on a small source and checks it on the analyzer's own tree.
"""

from __future__ import annotations

import textwrap

import pytest

from scopegen.analyze import Import, Unit, analyze_source, module_imports, module_units


def _units(src: str) -> tuple[Unit, ...]:
    analysis = analyze_source(textwrap.dedent(src), "iface.py")
    assert analysis.module is not None, analysis.diagnostics
    return module_units(analysis)


def test_a_line_of_semicolon_separated_statements_is_one_unit() -> None:
    units = _units("a = 1; b = 2\nimport os; import sys\nc = a\n")
    assert [u.kind for u in units] == ["other", "import", "other"]
    assert units[0].binds == {"a", "b"}
    assert units[1].binds == {"os", "sys"}


def test_lines_and_source_start_at_the_statement_not_at_the_comments_above_it() -> None:
    src = textwrap.dedent(
        '''\
        #!/usr/bin/env python
        """Doc."""

        # a comment above
        X = 1  # trailing


        @decorator  # on the decorator
        # between
        def f() -> int:
            return X
        '''
    )
    units = _units(src)
    lines = src.splitlines()
    assert [u.line for u in units] == [2, 5, 8]
    for u in units:
        assert u.source.splitlines()[0] == lines[u.line - 1]
    assert units[2].source.endswith("    return X\n")


def test_names_bound_read_and_mutated_by_a_statement() -> None:
    units = _units(
        """\
        import torch
        model = torch.load(path)
        model.eval()
        model.config.x = 1
        cache[key] = value
        n += step
        for i, item in enumerate(items):
            total = item
        with open(p) as fh, lock as held.attr:
            pass
        try:
            import numpy as np
        except ImportError as err:
            np = None
        squares = [k * k for k in ks]
        f(x=keyword_value)
        a.b().c(d)
        if True:
            flag = None
        """
    )
    u = {unit.line: unit for unit in units}
    assert u[1].kind == "import" and u[1].binds == {"torch"}
    assert u[2].binds == {"model"} and u[2].reads == {"torch", "path"}
    assert u[2].mutates == {"torch"}  # a method call: the plan ignores modules
    assert u[3].mutates == {"model"} and u[3].binds == frozenset()
    assert u[4].mutates == {"model"}
    assert u[5].mutates == {"cache"} and u[5].reads == {"cache", "key", "value"}
    assert u[6].binds == {"n"} and u[6].reads == {"n", "step"}
    assert u[7].binds == {"i", "item", "total"}
    assert u[9].binds == {"fh"} and u[9].mutates == {"held"}
    assert u[11].binds == {"np", "err"} and u[11].import_binds == {"np"}
    # Comprehension variables and keyword names are not module names.
    assert u[15].binds == {"squares"} and u[15].reads == {"k", "ks"}
    assert u[16].reads == {"f", "keyword_value"}
    assert u[17].mutates == {"a"} and u[17].reads == {"a", "d"}
    assert u[18].binds == {"flag"} and u[18].reads == frozenset()  # True/None are no names


def test_functions_and_classes_bind_their_name_and_read_through_their_bodies() -> None:
    units = _units(
        """\
        @cache(size=SIZE)
        def load(p: Path = DEFAULT) -> Model:
            global seen
            return torch.load(p, map_location=DEVICE)

        class Net(Base, metaclass=Meta):
            width = WIDTH
            def forward(self, x):
                return x * SCALE
        """
    )
    fn, cls = units
    assert fn.kind == "def" and fn.binds == {"load"} and fn.mutates == frozenset()
    assert fn.reads == {"cache", "SIZE", "Path", "DEFAULT", "Model", "torch", "DEVICE", "p"}
    assert cls.kind == "class" and cls.binds == {"Net"}
    assert cls.reads == {"Base", "Meta", "WIDTH", "x", "SCALE"}


def test_star_imports_and_every_import_are_recorded() -> None:
    units = _units("from helpers import *\nimport a.b as ab, c\nfrom d.e import f as g\n")
    assert units[0].star and units[0].imports == (Import("helpers", "*"),)
    assert units[1].binds == {"ab", "c"}
    assert units[1].imports == (Import("a.b", None), Import("c", None))
    assert units[2].binds == {"g"} and units[2].imports == (Import("d.e", "f"),)


def test_calls_load_is_the_sg010_detection_plus_get_model_path() -> None:
    units = _units(
        """\
        import torch
        from scopegen import get_model_path as gmp
        a = torch.load("w.pt")
        b = Model.from_pretrained(p)
        c = get_model_path("org/m")
        d = pipeline("task")
        e = torch.save(x, "w.pt")
        def f():
            return net.load_state_dict(sd)
        g = f()
        """
    )
    assert [u.calls_load for u in units] == [
        False, False, True, True, True, True, False, True, False,
    ]  # fmt: skip


def test_a_bound_get_model_path_is_not_scopegen_s() -> None:
    units = _units("def get_model_path(x):\n    return x\np = get_model_path('a/b')\n")
    assert not units[1].calls_load


@pytest.mark.parametrize(
    "edited",
    [
        "model = Model.from_pretrained(  # the model\n    path,\n    dtype=DTYPE,\n)\n",
        "model = Model.from_pretrained(path, dtype=(DTYPE))\n",
        "model = Model.from_pretrained(path, dtype=DTYPE,)\n",
        "model=Model . from_pretrained( path , dtype = DTYPE )\n",
    ],
)
def test_the_digest_ignores_layout(edited: str) -> None:
    base = _units("model = Model.from_pretrained(path, dtype=DTYPE)\n")[0]
    assert _units(edited)[0].digest == base.digest


def test_the_digest_sees_one_line_blocks_as_blocks() -> None:
    one = _units("if cuda:\n    a = 1; b = 2\n")[0]
    two = _units("if cuda:\n    a = 1\n    b = 2\n")[0]
    suite = _units("if cuda: a = 1; b = 2\n")[0]
    assert one.digest == two.digest == suite.digest


@pytest.mark.parametrize(
    "edited",
    [
        "model = Model.from_pretrained(path, dtype=OTHER)\n",
        "model = Model.from_pretrained(path, dtype='DTYPE')\n",
        "model = Model.from_pretrained(path)\n",
        "model = Model.from_pretrained(dtype=DTYPE, path=path)\n",
        "model = Model.from_pretrained(path, dtype=-DTYPE)\n",
    ],
)
def test_the_digest_sees_code_changes(edited: str) -> None:
    base = _units("model = Model.from_pretrained(path, dtype=DTYPE)\n")[0]
    assert _units(edited)[0].digest != base.digest


def test_operators_and_async_count_in_the_digest() -> None:
    assert _units("x = a + b\n")[0].digest != _units("x = a - b\n")[0].digest
    assert _units("def f(): pass\n")[0].digest != _units("async def f(): pass\n")[0].digest


def test_a_unit_compiles_to_the_file_s_line_numbers() -> None:
    src = "import os\n\n\n# note\nx = (\n    1 / 0\n)\n"
    unit = _units(src)[1]
    code = compile("\n" * (unit.line - 1) + unit.source, "iface.py", "exec")
    with pytest.raises(ZeroDivisionError) as info:
        exec(code, {})
    assert info.traceback[-1].lineno + 1 == 6


def test_module_imports_finds_imports_anywhere_and_relative_ones() -> None:
    src = "import a\nfrom . import b\nfrom ..c import d\ndef f():\n    import e.f\n"
    assert module_imports(src) == (
        Import("a", None),
        Import("", "b", 1),
        Import("c", "d", 2),
        Import("e.f", None),
    )
    assert module_imports("def (:\n") is None


def test_units_need_the_parse_tree() -> None:
    analysis = analyze_source("x = (\n", "broken.py")
    with pytest.raises(ValueError, match="no parse tree"):
        module_units(analysis)
