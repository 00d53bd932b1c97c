"""What blocks the event loop inside an exposed ``async def`` (SG015).

An ``async def`` runs on the server's event loop: a call in its body that
does not ``await`` and takes time (a forward pass, ``time.sleep``, a file
read, an HTTP request with ``requests``) stops every other request until it
returns. This module finds such calls in the body of one function, without
running anything:

- calls of a model the file loads at module level (``model(...)``,
  ``pipe(...)``, ``model.encode(...)``) and ``.generate(...)`` on anything;
- ``torch`` functions, except the cheap context managers and queries;
- ``time.sleep``, ``requests``, ``urllib.request.urlopen``, ``subprocess``,
  ``os.system``, the sync ``httpx`` functions;
- file reads and writes: the builtin ``open``, ``.read_text()``, ``.write_bytes()``, ...;
- a helper function of the file (a plain ``def``) that does any of these.

Awaited calls, and code in nested functions and lambdas (what
``asyncio.to_thread`` and ``run_in_executor`` run elsewhere), do not count.
Only exposed ``async def`` functions are scanned, so a file without them
costs nothing here.
"""

from __future__ import annotations

import libcst as cst

from scopegen.analyze._names import ModuleNames, iter_module_statements
from scopegen.analyze._walk import LoadCalls, child_fields

__all__ = ["BlockingCalls"]

_SLEEPS_AND_IO = frozenset(
    {
        "time.sleep",
        "urllib.request.urlopen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "os.system",
        "io.open",
        "httpx.get",
        "httpx.post",
        "httpx.put",
        "httpx.patch",
        "httpx.delete",
        "httpx.head",
        "httpx.options",
        "httpx.request",
        "httpx.stream",
    }
)
# torch calls that return at once: context managers and queries.
_CHEAP_TORCH = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.enable_grad",
        "torch.set_grad_enabled",
        "torch.autocast",
        "torch.amp.autocast",
        "torch.device",
        "torch.is_tensor",
        "torch.get_default_dtype",
        "torch.cuda.is_available",
        "torch.cuda.device_count",
        "torch.backends.mps.is_available",
    }
)
# Methods of a loaded model that run it.
_FORWARD_ATTRS = frozenset({"forward", "encode", "predict", "transcribe", "generate"})
_FILE_ATTRS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes"})
# What ``X.from_pretrained`` loads when X is one of these is not a model to run.
_NOT_MODELS = ("Tokenizer", "Processor", "Config", "FeatureExtractor")
_HELPER_DEPTH = 8


class BlockingCalls:
    """Finds the blocking calls of exposed ``async def`` bodies in one module."""

    def __init__(self, module: cst.Module, names: ModuleNames, loads: LoadCalls) -> None:
        self.names = names
        self.loads = loads
        self.models = {
            name
            for name, value in names.assignments.items()
            if name not in names.imports and self._loads_a_model(value)
        }
        self.helpers = {
            stmt.name.value: stmt
            for stmt in iter_module_statements(module.body)
            if isinstance(stmt, cst.FunctionDef) and stmt.asynchronous is None
        }
        self._helper_blocks: dict[str, str | None] = {}

    def in_function(self, fn: cst.FunctionDef) -> list[tuple[cst.Call, str]]:
        """The blocking calls in ``fn``'s own body, in source order, each with its label."""
        found: list[tuple[cst.Call, str]] = []
        for call in _own_calls(fn.body):
            reason = self._reason(call, depth=0)
            if reason is None:
                continue
            func = call.func
            if isinstance(func, cst.Name) and func.value in self.helpers:
                reason = f"{func.value}() (it calls {reason})"
            found.append((call, reason))
        return found

    def _reason(self, call: cst.Call, depth: int, *, in_helper: bool = False) -> str | None:
        """The blocking call ``call`` is or makes (``time.sleep()``), else None.

        For a call of a helper function of the file: the first blocking call it makes.
        """
        func = call.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        if self.loads.load(func) is not None:
            # A load directly in the exposed function is SG010's to report.
            return self.loads.load(func) if in_helper else None
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            if attr == "generate":
                return ".generate()"
            if attr in _FILE_ATTRS:
                return f".{attr}()"
            root = func.value
            if isinstance(root, cst.Name) and root.value in self.models and attr in _FORWARD_ATTRS:
                return f"{root.value}.{attr}()"
        elif func.value in self.models:
            return f"{func.value}()"
        elif func.value in self.helpers and not self.names.imports.get(func.value):
            return self._helper(func.value, depth)
        qn = self.names.qualify(func)
        if qn is None:
            return None
        if qn in _SLEEPS_AND_IO or qn.startswith("requests."):
            return f"{qn}()"
        if qn == "open" and not self.names.is_bound("open"):
            return "open()"
        if qn.startswith("torch.") and qn not in _CHEAP_TORCH:
            return f"{qn}()"
        return None

    def _helper(self, name: str, depth: int) -> str | None:
        """The first blocking call a helper makes (through other helpers too), or None."""
        if name in self._helper_blocks:
            return self._helper_blocks[name]
        self._helper_blocks[name] = None  # recursion guard
        if depth >= _HELPER_DEPTH:
            return None
        for call in _own_calls(self.helpers[name].body):
            reason = self._reason(call, depth + 1, in_helper=True)
            if reason is not None:
                self._helper_blocks[name] = reason
                break
        return self._helper_blocks[name]

    def _loads_a_model(self, value: cst.BaseExpression) -> bool:
        """``AutoModel.from_pretrained(p).eval()``, ``pipeline(...)``: not tokenizers, configs."""
        for call in _own_calls(value):
            func = call.func
            if isinstance(func, (cst.Name, cst.Attribute)) and self.loads.load(func) is not None:
                receiver = func.value if isinstance(func, cst.Attribute) else func
                text = self.names.qualify(receiver) or ""
                return not any(part in text for part in _NOT_MODELS)
        return False


_ELSEWHERE = frozenset({cst.FunctionDef, cst.Lambda, cst.ClassDef})


def _own_calls(node: cst.CSTNode) -> list[cst.Call]:
    """The calls ``node`` runs itself, in source order.

    Not the calls of nested functions, lambdas or classes (they run elsewhere
    or later), and not an awaited call itself (its arguments still count).
    """
    calls: list[cst.Call] = []
    awaited: set[int] = set()
    stack: list[cst.CSTNode] = [node]
    node_type = cst.CSTNode
    while stack:
        n = stack.pop()
        t = type(n)
        if t in _ELSEWHERE and n is not node:
            continue
        if t is cst.Await:
            assert isinstance(n, cst.Await)
            if type(n.expression) is cst.Call:
                awaited.add(id(n.expression))
        elif t is cst.Call and id(n) not in awaited:
            assert isinstance(n, cst.Call)
            calls.append(n)
        children: list[cst.CSTNode] = []
        for name in child_fields(t):
            v = getattr(n, name)
            if type(v) is tuple or type(v) is list:
                children.extend(x for x in v if isinstance(x, node_type))
            elif v is not None and isinstance(v, node_type):
                children.append(v)
        stack.extend(reversed(children))
    return calls
