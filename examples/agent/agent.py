"""The agent's side of the scoped sandbox: call the model through its client.

This runs in the agent workspace, a virtual environment that holds only the
generated client package (``pip install build/model_tools``): no torch, no
model, no scopegen. It does what the scoped-sandbox document's task asks::

    Import model_tools and:
    1. Call get_model_info() to see model specs
    2. Call generate_text("Once upon a time") to generate text
       (or get_embedding("hello") when the model embeds instead)
    3. Call compare_texts("hello", "hi") to compare similarity

and then a sweep, as jobs: one ``compare_texts`` job per sentence, submitted
at once (``tools.jobs.compare_texts(...)``), the results collected after. A
job runs on the server whatever happens to this process; its id re-attaches
from anywhere (``tools.jobs.attach(job_id)``).

The client finds the server through MODEL_TOOLS_URL and MODEL_TOOLS_TOKEN.
Results arrive validated into the interface's declared return types, and are
printed with their type so that is visible.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import Any

UNRELATED = "The central bank raised interest rates by half a point."
SWEEP = ["hi", "hello there", "goodbye", "a cat sat on the mat", UNRELATED]


def describe(value: Any) -> str:
    """``TypeName(field=value, ...)``, long float lists shortened."""
    fields = _fields(value)
    if fields is None:
        return repr(value)
    inner = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
    return f"{type(value).__name__}({inner})"


def _fields(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)  # a pydantic model from the client
    return dump() if callable(dump) else None


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 4:
        head = ", ".join(f"{v:.4f}" if isinstance(v, float) else repr(v) for v in value[:3])
        return f"[{head}, ... {len(value)} items]"
    if isinstance(value, float):
        return f"{value:.4f}"
    return repr(value)


def _get(value: Any, key: str) -> Any:
    return value[key] if isinstance(value, dict) else getattr(value, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="model_tools", help="client package to import")
    args = parser.parse_args(argv)
    tools = importlib.import_module(args.package)
    print(f"agent: using {tools.__name__} from {tools.__file__}")

    # 1. Model specs.
    info = tools.get_model_info()
    print(f"1. get_model_info() -> {describe(info)}")

    # 2. Generate (a language model) or embed (an embedding model).
    if hasattr(tools, "generate_text"):
        out = tools.generate_text("Once upon a time", max_tokens=20)
        print(f"2. generate_text('Once upon a time', max_tokens=20) -> {describe(out)}")
    else:
        emb = tools.get_embedding("hello")
        vector = _get(emb, "embedding")
        norm = math.sqrt(sum(v * v for v in vector))
        print(f"2. get_embedding('hello') -> {describe(emb)}")
        print(f"   {len(vector)} floats, L2 norm {norm:.6f}")

    # 3. Similarity: a near-synonym, then an unrelated sentence.
    close = tools.compare_texts("hello", "hi")
    far = tools.compare_texts("hello", UNRELATED)
    print(f"3. compare_texts('hello', 'hi') -> {describe(close)}")
    print(f"   compare_texts('hello', {UNRELATED!r}) -> similarity {_get(far, 'similarity'):.4f}")

    # 4. A sweep as jobs: submitted at once, run by the server, collected by id.
    jobs = [tools.jobs.compare_texts("hello", text) for text in SWEEP]
    print(f"4. submitted {len(jobs)} compare_texts jobs (first id {jobs[0].id})")
    again = tools.jobs.attach(jobs[0].id)  # what another process would do
    print(f"   attach({jobs[0].id!r}).status() -> {again.status()}")
    for text, job in zip(SWEEP, jobs, strict=True):
        result = job.result(timeout=600)
        print(f"   {text!r}: similarity {_get(result, 'similarity'):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
