"""`serve --reload` without a server: which statements are kept, and re-execution itself.

The plan tests feed two versions of a file to ``build_plan`` / ``plan_reuse``
and check which model loads survive the edit. The reloader tests execute real
interface files in this process (in ``tmp_path``), edit them and reload,
checking identities, counters and what the new functions return.
"""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scopegen.analyze import analyze_source, module_units
from scopegen.server import ServerSettings
from scopegen.server.reload import Reloader
from scopegen.server.reload._plan import Plan, build_plan, plan_reuse

# --------------------------------------------------------------------------- plans

BASE = '''\
"""A model interface."""
import torch
from transformers import AutoModel, AutoTokenizer

MODEL_ID = "org/model"
MAX_TOKENS = 256

path = get_model_path("org/model")
device = "cuda" if torch.cuda.is_available() else "cpu"
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path).to(device)
model.eval()


@expose
def embed(text: str) -> list[float]:
    """Embed a text."""
    ids = tokenizer(text, max_length=MAX_TOKENS)
    return model(**ids).tolist()
'''


def _plan(src: str, helpers: dict[str, int] | None = None) -> Plan:
    analysis = analyze_source(src, "iface.py")
    assert analysis.ok, analysis.diagnostics
    return build_plan(module_units(analysis), helpers)


def _decide(before: str, after: str) -> tuple[list[str], list[str]]:
    """(kept, loaded again): the names of the expensive statements of ``after``."""
    old = _plan(before)
    new = _plan(after)
    snapshots: dict[int, dict[str, object]] = {i: {} for i in old.snapshot_units}
    reuse = plan_reuse(old, snapshots, new)
    return new.names(reuse.kept_heads), new.names(reuse.rerun_heads)


def test_loads_and_model_paths_are_the_expensive_statements() -> None:
    plan = _plan(BASE)
    assert plan.names(plan.heads) == ["path", "tokenizer", "model"]


def test_editing_an_exposed_function_keeps_every_load() -> None:
    after = BASE.replace("return model(**ids).tolist()", "return model(**ids)[0].tolist()")
    assert _decide(BASE, after) == (["path", "tokenizer", "model"], [])


def test_comments_blank_lines_and_unrelated_statements_do_not_count() -> None:
    after = BASE.replace(
        "MAX_TOKENS = 256", "# shorter inputs\nMAX_TOKENS   =   128  # was 256\n\n\nTHRESHOLD = 0.5"
    )
    assert _decide(BASE, after) == (["path", "tokenizer", "model"], [])


def test_editing_the_load_statement_loads_it_again() -> None:
    after = BASE.replace("AutoModel.from_pretrained(path)", "AutoModel.from_pretrained(path, x=1)")
    assert _decide(BASE, after) == (["path", "tokenizer"], ["model"])


def test_editing_what_a_load_reads_loads_it_again() -> None:
    after = BASE.replace('else "cpu"', 'else "mps"')
    assert _decide(BASE, after) == (["path", "tokenizer"], ["model"])
    after = BASE.replace('get_model_path("org/model")', 'get_model_path("org/other")')
    assert _decide(BASE, after) == ([], ["path", "tokenizer", "model"])


def test_adding_editing_or_removing_a_mutation_of_a_model_loads_it_again() -> None:
    # The kept object would otherwise carry (or miss) the change.
    added = BASE.replace("model.eval()\n", "model.eval()\nmodel.half()\n")
    assert _decide(BASE, added) == (["path", "tokenizer"], ["model"])
    removed = BASE.replace("model.eval()\n", "")
    assert _decide(BASE, removed) == (["path", "tokenizer"], ["model"])
    edited = BASE.replace("model.eval()\n", "model.train()\n")
    assert _decide(BASE, edited) == (["path", "tokenizer"], ["model"])
    pad = BASE.replace("model.eval()\n", "model.eval()\ntokenizer.pad_token = '<pad>'\n")
    assert _decide(BASE, pad) == (["path", "model"], ["tokenizer"])


def test_a_hook_registration_is_kept_with_its_model_until_the_hook_changes() -> None:
    src = BASE.replace(
        "model.eval()\n",
        "model.eval()\n\ndef hook(module, inputs, output):\n    return output * 2\n\n"
        "handle = model.register_forward_hook(hook)\n",
    )
    plan = _plan(src)
    assert "handle" in plan.names(plan.snapshot_units)
    unrelated = src.replace("return model(**ids).tolist()", "return []")
    assert _decide(src, unrelated) == (["path", "tokenizer", "model"], [])
    new_hook = src.replace("return output * 2", "return output * 3")
    assert _decide(src, new_hook) == (["path", "tokenizer"], ["model"])


def test_calls_on_a_guarded_import_do_not_tie_statements_to_the_model() -> None:
    src = BASE.replace(
        "import torch\n", "try:\n    import torch\nexcept ImportError:\n    torch = None\n"
    ).replace("model.eval()\n", "model.eval()\ntorch.set_float32_matmul_precision('high')\n")
    edited = src.replace("'high'", "'medium'")
    assert _decide(src, edited) == (["path", "tokenizer", "model"], [])


def test_a_load_through_a_function_of_the_file_follows_that_function() -> None:
    src = textwrap.dedent(
        """\
        import torch
        WEIGHTS = "w.pt"

        def load_model():
            return torch.load(WEIGHTS)

        net = load_model()

        @expose
        def f(x: int) -> int:
            return x
        """
    )
    assert _plan(src).names(_plan(src).heads) == ["net"]
    assert _decide(src, src.replace("return x", "return -x")) == (["net"], [])
    assert _decide(src, src.replace("torch.load(WEIGHTS)", "torch.load(WEIGHTS, mmap=True)")) == (
        [],
        ["net"],
    )
    assert _decide(src, src.replace('"w.pt"', '"v.pt"')) == ([], ["net"])


def test_a_rebuilt_model_is_part_of_its_chain() -> None:
    src = BASE.replace(
        "model = AutoModel.from_pretrained(path).to(device)",
        "model = AutoModel.from_pretrained(path)\nmodel = torch.compile(model)",
    )
    assert _decide(src, src.replace("return model(**ids).tolist()", "return []"))[1] == []
    edited = src.replace("torch.compile(model)", "torch.compile(model, mode='max-autotune')")
    assert _decide(src, edited) == (["path", "tokenizer"], ["model"])


def test_local_helper_digests_sign_the_statements_importing_them() -> None:
    src = "from helper_mod import load\nmodel = load()\n@expose\ndef f() -> int:\n    return 1\n"
    # ``load`` is opaque here, so ``model`` is no head; its import is signed anyway.
    a = _plan(src, {"helper_mod": 1})
    b = _plan(src, {"helper_mod": 2})
    assert a.heads == b.heads == ()
    src2 = "from helper_mod import load\nimport torch\nmodel = torch.load(load())\n" + src[40:]
    a = _plan(src2, {"helper_mod": 1})
    b = _plan(src2, {"helper_mod": 2})
    head = a.heads[0]
    assert a.sigs[head] != b.sigs[head]
    assert plan_reuse(a, {i: {} for i in a.snapshot_units}, b).rerun_heads == (head,)


# --------------------------------------------------------------------------- reloader


COUNTED = '''\
"""Counts its model loads."""
import time
from pathlib import Path

LOADS: list[str] = []


class FakeModel:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.hooks: list[object] = []

    @classmethod
    def from_pretrained(cls, model_id: str) -> "FakeModel":
        LOADS.append(model_id)
        return cls(model_id)

    def register_hook(self, fn: object) -> None:
        self.hooks.append(fn)


model = FakeModel.from_pretrained("org/model-a")


def hook() -> None:
    pass


model.register_hook(hook)
GREETING = "hello"


@expose
def greet(name: str) -> str:
    return f"{GREETING} {name}"


@expose
def state() -> dict:
    return {"loads": list(LOADS), "model": model.model_id, "hooks": len(model.hooks)}
'''


def _reloader(path: Path) -> tuple[Reloader, io.StringIO]:
    out = io.StringIO()
    r = Reloader(path, ServerSettings(token=None), stream=out)
    r.load()
    return r, out


def _call(r: Reloader, fn: str, **kwargs: Any) -> Any:
    loaded = r.loaded
    assert loaded is not None
    return loaded.functions[fn](**kwargs)


def test_reload_keeps_the_model_object_and_runs_the_rest_in_a_fresh_module(
    tmp_path: Path, isolated: None
) -> None:
    iface = tmp_path / "reload_counted.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    first = r.loaded
    assert first is not None
    old_greet = first.functions["greet"]
    iface.write_text(COUNTED.replace('GREETING = "hello"', 'GREETING = "hi"'))
    assert r.reload()
    second = r.loaded
    assert second is not None and second is not first
    assert _call(r, "greet", name="x") == "hi x"
    # The old function still reads the old module's globals (a call in flight).
    assert old_greet(name="x") == "hello x"
    assert second.module is not first.module
    assert vars(second.module)["model"] is vars(first.module)["model"]
    # Loaded once, hook registered once, and LOADS is the list the kept model saw.
    assert _call(r, "state") == {"loads": ["org/model-a"], "model": "org/model-a", "hooks": 1}
    assert "kept: model; re-ran:" in out.getvalue()


def test_editing_the_load_or_its_mutations_loads_a_fresh_model(
    tmp_path: Path, isolated: None
) -> None:
    iface = tmp_path / "reload_fresh.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    iface.write_text(COUNTED.replace("org/model-a", "org/model-b"))
    assert r.reload()
    assert _call(r, "state") == {"loads": ["org/model-b"], "model": "org/model-b", "hooks": 1}
    assert "kept: nothing" in out.getvalue() and "loaded again: model" in out.getvalue()
    # A second hook registration changes the model's chain: a fresh model gets both.
    two_hooks = COUNTED.replace("org/model-a", "org/model-b").replace(
        "model.register_hook(hook)\n", "model.register_hook(hook)\nmodel.register_hook(hook)\n"
    )
    iface.write_text(two_hooks)
    assert r.reload()
    assert _call(r, "state")["hooks"] == 2


def test_an_exception_while_reloading_keeps_the_previous_version(
    tmp_path: Path, isolated: None
) -> None:
    iface = tmp_path / "reload_raises.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    before = r.loaded
    broken = COUNTED.replace('GREETING = "hello"', 'GREETING = "hello"\nraise KeyError("oops")')
    iface.write_text(broken)
    assert not r.reload()
    assert r.loaded is before
    text = out.getvalue()
    assert "KeyError: 'oops'" in text
    line = broken.splitlines().index('raise KeyError("oops")') + 1
    assert f'reload_raises.py", line {line}, in <module>' in text
    assert "still serving the previous version" in text
    iface.write_text(COUNTED.replace('"hello"', '"hey"'))
    assert r.reload()
    assert _call(r, "greet", name="x") == "hey x"
    assert _call(r, "state")["loads"] == ["org/model-a"]


def test_lint_errors_keep_the_previous_version(tmp_path: Path, isolated: None) -> None:
    iface = tmp_path / "reload_lint.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    before = r.loaded
    iface.write_text(COUNTED.replace("def greet(name: str)", "def greet(name)"))
    assert not r.reload()
    assert r.loaded is before
    assert "SG001" in out.getvalue() and "1 lint error" in out.getvalue()
    iface.write_text(COUNTED)  # Undone: what is served is what the file says again.
    assert not r.reload()
    assert out.getvalue().endswith("scopegen: reload_lint.py is back to the version being served\n")


def test_unchanged_content_does_not_reload(tmp_path: Path, isolated: None) -> None:
    iface = tmp_path / "reload_same.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    iface.write_text(COUNTED)
    assert not r.reload()
    assert out.getvalue() == ""


def test_tracebacks_future_imports_and_docstring_behave_as_in_a_plain_import(
    tmp_path: Path, isolated: None
) -> None:
    src = textwrap.dedent(
        '''\
        """The module docstring."""
        from __future__ import annotations


        def helper(x: NotDefinedAnywhere) -> None:  # fine: annotations are strings
            pass

        "a lone string statement"


        @expose
        def fail() -> int:
            raise ValueError("boom")
        '''
    )
    iface = tmp_path / "reload_semantics.py"
    iface.write_text(src)
    r, _ = _reloader(iface)
    loaded = r.loaded
    assert loaded is not None
    assert loaded.module.__doc__ == "The module docstring."
    with pytest.raises(ValueError) as info:
        loaded.functions["fail"]()
    last = info.traceback[-1]
    assert Path(str(last.path)) == iface.resolve()
    assert last.lineno + 1 == src.splitlines().index('    raise ValueError("boom")') + 1


def test_an_edited_helper_module_is_imported_again(tmp_path: Path, isolated: None) -> None:
    (tmp_path / "reload_helper_words.py").write_text('WORD = "one"\n')
    (tmp_path / "reload_helper_loader.py").write_text(
        "LOADS = []\n\ndef load(name):\n    LOADS.append(name)\n    return name\n"
    )
    src = textwrap.dedent(
        """\
        import reload_helper_words
        from reload_helper_loader import LOADS, load


        class Weights:
            @classmethod
            def from_pretrained(cls, name):
                return cls()


        model = Weights.from_pretrained(load("weights"))


        @expose
        def word() -> str:
            return reload_helper_words.WORD


        @expose
        def loads() -> int:
            return len(LOADS)
        """
    )
    iface = tmp_path / "reload_with_helpers.py"
    iface.write_text(src)
    r, out = _reloader(iface)
    assert [p.name for p in r.watched] == [
        "reload_with_helpers.py",
        "reload_helper_loader.py",
        "reload_helper_words.py",
    ]
    assert _call(r, "word") == "one" and _call(r, "loads") == 1
    (tmp_path / "reload_helper_words.py").write_text('WORD = "two"\n')
    assert r.reload()
    assert _call(r, "word") == "two"
    assert _call(r, "loads") == 1  # The load does not use that helper: kept.
    assert "kept: model" in out.getvalue()
    (tmp_path / "reload_helper_loader.py").write_text(
        "LOADS = []\n\ndef load(name):\n    LOADS.append(name + '!')\n    return name\n"
    )
    assert r.reload()
    assert _call(r, "loads") == 1  # A fresh helper module, and the load ran again.
    assert "loaded again: model" in out.getvalue()
    assert "loaded again: model (helper module reload_helper_loader changed)" in out.getvalue()


def test_a_run_time_mismatch_keeps_the_previous_version(tmp_path: Path, isolated: None) -> None:
    iface = tmp_path / "reload_mismatch.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)
    before = r.loaded
    assert before is not None
    hidden = "\n\nif False:\n\n    @expose\n    def never() -> int:\n        return 1\n"
    iface.write_text(COUNTED + hidden)
    assert not r.reload()
    assert r.loaded is before
    assert "found by the analyzer but not exposed when the file ran: never" in out.getvalue()
    assert sys.modules[before.module.__name__] is before.module


def _why(before: str, after: str) -> dict[str, str]:
    """Head names of ``after`` that load again -> why."""
    old = _plan(before)
    new = _plan(after)
    reuse = plan_reuse(old, {i: {} for i in old.snapshot_units}, new)
    return {", ".join(new.names([h])): reuse.reasons[h] for h in reuse.rerun_heads}


def _line(src: str, text: str) -> int:
    return src.splitlines().index(text) + 1


def test_the_reuse_decision_says_why_each_load_runs_again() -> None:
    after = BASE.replace('else "cpu"', 'else "mps"')
    line = _line(after, 'device = "cuda" if torch.cuda.is_available() else "mps"')
    assert _why(BASE, after) == {"model": f"it depends on device, changed at line {line}"}
    after = BASE.replace("from_pretrained(path).to(device)", "from_pretrained(path).to('cpu')")
    line = _line(after, "model = AutoModel.from_pretrained(path).to('cpu')")
    assert _why(BASE, after) == {"model": f"its statement changed at line {line}"}
    after = BASE.replace("model.eval()\n", "model.eval()\nmodel.half()\n")
    line = _line(after, "model.half()")
    assert _why(BASE, after) == {"model": f"line {line}, which changes it, is new or edited"}
    assert _why(BASE, BASE.replace("model.eval()\n", "")) == {
        "model": "a statement that changed it was removed or moved"
    }


MIXED = '''\
"""Statements that the ast and libcst count differently, around two model loads."""
import functools; import time

LOADS: list[str] = []
DEVICE = "cpu"; DTYPE = "float32"


class FakeModel:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id; self.evaluated = False

    @classmethod
    def from_pretrained(cls, model_id: str, device: str) -> "FakeModel":
        LOADS.append(model_id); return cls(model_id)

    def eval(self) -> "FakeModel":
        self.evaluated = True; return self


if DEVICE == "cpu":
    model = FakeModel.from_pretrained("org/model-a", DEVICE); model.eval()
else:
    model = None


@functools.lru_cache(maxsize=None)
def load_tokenizer() -> FakeModel:
    return FakeModel.from_pretrained("org/tok", DEVICE)


tokenizer = load_tokenizer(); VOCAB = 3


@expose
def greet(name: str) -> str:
    return f"hello {name}"; time.sleep(0)


@expose
def loads() -> list[str]:
    return list(LOADS)
'''


def test_semicolon_lines_if_blocks_and_decorators_keep_the_models(
    tmp_path: Path, isolated: None
) -> None:
    iface = tmp_path / "reload_mixed.py"
    iface.write_text(MIXED)
    r, out = _reloader(iface)
    first = r.loaded
    assert first is not None
    iface.write_text(MIXED.replace('f"hello {name}"', 'f"hi {name}"'))
    assert r.reload()
    second = r.loaded
    assert second is not None and second.module is not first.module
    assert _call(r, "greet", name="x") == "hi x"
    for name in ("model", "tokenizer"):
        assert vars(second.module)[name] is vars(first.module)[name]
    assert vars(second.module)["model"].evaluated
    assert _call(r, "loads") == ["org/model-a", "org/tok"]
    assert "kept: model, VOCAB, tokenizer; re-ran:" in out.getvalue()
    # An edit in a line of several statements is seen: both loads read that line.
    iface.write_text(MIXED.replace('DTYPE = "float32"', 'DTYPE = "float16"'))
    assert r.reload()
    third = r.loaded
    assert third is not None
    for name in ("model", "tokenizer"):
        assert vars(third.module)[name] is not vars(second.module)[name]
    assert _call(r, "loads") == ["org/model-a", "org/tok"]  # a fresh LOADS, as on a start
    why = "it depends on DEVICE, DTYPE, changed at line 5"
    assert f"loaded again: model ({why}), VOCAB, tokenizer ({why})" in out.getvalue()


def test_a_reload_says_why_it_loads_the_model_again(tmp_path: Path, isolated: None) -> None:
    iface = tmp_path / "reload_why.py"
    iface.write_text(COUNTED)
    r, out = _reloader(iface)

    def reload_with(src: str) -> str:
        iface.write_text(src)
        assert r.reload()
        (line,) = [ln for ln in out.getvalue().splitlines() if "reloaded reload_why.py" in ln][-1:]
        return line.partition("; loaded again: ")[2]

    edited = COUNTED.replace("org/model-a", "org/model-b")
    line = _line(edited, 'model = FakeModel.from_pretrained("org/model-b")')
    assert reload_with(edited) == f"model (its statement changed at line {line})"
    edited = edited.replace("self.hooks: list[object] = []", "self.hooks: list[object] = [None]")
    line = _line(edited, "class FakeModel:")
    assert reload_with(edited) == f"model (it depends on FakeModel, changed at line {line})"
    edited = edited.replace(
        "model.register_hook(hook)\n", "model.register_hook(hook)\nmodel.register_hook(hook)\n"
    )
    line = _line(edited, "model.register_hook(hook)") + 1
    assert reload_with(edited) == f"model (line {line}, which changes it, is new or edited)"
    assert reload_with(edited.replace('GREETING = "hello"', 'GREETING = "hi"')) == ""
