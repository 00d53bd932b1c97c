"""SG015: which calls inside an exposed ``async def`` block the event loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopegen.analyze import analyze_source

ROOT = Path(__file__).resolve().parents[2]
HEAD = (
    "import asyncio, time, torch, requests, subprocess\n"
    "from pathlib import Path\n"
    "from transformers import AutoModel, AutoTokenizer, pipeline\n"
    "tok = AutoTokenizer.from_pretrained('/m')\n"
    "model = AutoModel.from_pretrained('/m').to('cpu').eval()\n"
    "pipe = pipeline('text-generation', model='/m')\n"
)


def _sg015(body: str, head: str = HEAD) -> list[str]:
    src = f"{head}@expose\nasync def f(x: str) -> str:\n{body}    return x\n"
    return [d.message for d in analyze_source(src).diagnostics if d.code == "SG015"]


@pytest.mark.parametrize(
    ("line", "call"),
    [
        ("    time.sleep(1)\n", "time.sleep()"),
        ("    model(**tok(x))\n", "model()"),
        ("    pipe(x)\n", "pipe()"),
        ("    model.encode([x])\n", "model.encode()"),
        ("    anything.generate(x)\n", ".generate()"),
        ("    torch.nn.functional.normalize(torch.zeros(3), dim=0)\n", "torch.nn.functional"),
        ("    requests.post('http://h', json={})\n", "requests.post()"),
        ("    open(x).read()\n", "open()"),
        ("    Path(x).read_text()\n", ".read_text()"),
        ("    subprocess.run(['ls'])\n", "subprocess.run()"),
    ],
)
def test_each_kind_of_blocking_call_is_named(line: str, call: str) -> None:
    (message,) = _sg015(line)
    assert message.startswith(f"`{call}")
    assert "blocks the event loop inside `async def f`" in message
    assert "make `f` a plain `def` (it runs in a worker thread)" in message
    assert "`await asyncio.to_thread(...)`" in message


@pytest.mark.parametrize(
    "body",
    [
        "    await asyncio.sleep(1)\n",
        "    await asyncio.to_thread(model, x)\n",
        "    await asyncio.to_thread(lambda: model.generate(x))\n",
        "    def run():\n        return model(x)\n    await asyncio.to_thread(run)\n",
        "    await asyncio.get_running_loop().run_in_executor(None, pipe, x)\n",
        "    with torch.no_grad():\n        pass\n",
        "    ids = tok(x)\n",  # a tokenizer is not a model's forward pass
        "    n = model.config.hidden_size\n",
        "    if torch.cuda.is_available():\n        pass\n",
    ],
)
def test_awaiting_and_cheap_calls_are_not_flagged(body: str) -> None:
    assert _sg015(body) == []


def test_a_sync_function_is_never_flagged() -> None:
    src = f"{HEAD}@expose\ndef f(x: str) -> str:\n    time.sleep(1)\n    model(x)\n    return x\n"
    assert not [d for d in analyze_source(src).diagnostics if d.code == "SG015"]


def test_one_report_per_function_at_the_first_call_counting_the_rest() -> None:
    messages = _sg015("    time.sleep(1)\n    model(x)\n    pipe(x)\n")
    assert len(messages) == 1
    assert messages[0].startswith(
        "`time.sleep()` blocks the event loop inside `async def f` (and 2 more blocking calls)"
    )


def test_helpers_of_the_file_count_through_their_own_calls() -> None:
    head = HEAD + "def _run(x):\n    return _inner(x)\ndef _inner(x):\n    return model(x)\n"
    (message,) = _sg015("    _run(x)\n", head)
    assert message.startswith("`_run() (it calls model())` blocks the event loop")
    cheap = HEAD + "def _clean(x):\n    return x.strip()\n"
    assert _sg015("    _clean(x)\n", cheap) == []


def test_the_embeddings_example_written_async_is_flagged_at_its_forward_pass() -> None:
    source = (ROOT / "examples" / "embeddings" / "interface.py").read_text(encoding="utf-8")
    assert not [d for d in analyze_source(source).diagnostics if d.code == "SG015"]
    written_async = source.replace("def compare_texts(", "async def compare_texts(")
    (d,) = [d for d in analyze_source(written_async).diagnostics if d.code == "SG015"]
    assert d.message.startswith("`_embed() (it calls model())` blocks the event loop inside")
    assert d.severity == "warning"
