"""Tensors in tool results are summaries an agent can read, whatever their size."""

from __future__ import annotations

import base64

import ml_dtypes
import numpy as np
import orjson
import pytest

from scopegen import protocol
from scopegen.mcp import _tensors
from scopegen.mcp._remote import outcome_from_response, result_schema


def json_form(a: np.ndarray) -> dict[str, object]:
    data = base64.b64encode(a.tobytes()).decode()
    return {"$tensor": {"dtype": a.dtype.name, "shape": list(a.shape), "data": data}}


def test_a_large_tensor_result_becomes_a_short_summary() -> None:
    a = np.random.default_rng(0).standard_normal((512, 3584)).astype(np.float32)
    body = orjson.dumps({"result": {"hidden": json_form(a), "layer": 3}})
    outcome = outcome_from_response(200, body)
    assert outcome.ok and len(outcome.text) < 2000
    text = outcome.structured["result"]["hidden"]  # type: ignore[index]
    assert text.startswith("tensor float32 shape [512, 3584], 1,835,008 values: min ")
    assert f"{float(a.max()):.6g}" in text and f"{float(np.linalg.norm(a)):.6g}" in text
    assert f"first values [{float(a[0, 0]):.6g}," in text
    assert outcome.structured["result"]["layer"] == 3  # type: ignore[index]


@pytest.mark.parametrize("use_numpy", [True, False])
@pytest.mark.parametrize(
    "a",
    [
        np.arange(5, dtype=np.int8),
        np.ones(3, dtype=ml_dtypes.bfloat16) * 2,
        np.array([1.5, -2.0], dtype=np.float16),
        np.array(True),
        np.zeros((2, 0)),
        np.arange(10**5, dtype=np.float64),
    ],
    ids=lambda a: f"{a.dtype.name}{list(a.shape)}",
)
def test_every_summary_is_short_and_right_with_or_without_numpy(
    monkeypatch: pytest.MonkeyPatch, a: np.ndarray, use_numpy: bool
) -> None:
    header = json_form(a)["$tensor"]
    x = a.astype(np.float64)
    expected = [f"max {x.max():.6g},", f"mean {x.mean():.6g},"] if a.size else ["(empty)"]
    if not use_numpy:
        monkeypatch.setattr(_tensors, "_np", lambda: None)  # the bridge may run without numpy
    text = _tensors.summary(header)  # type: ignore[arg-type]
    assert len(text) < _tensors.MAX_SUMMARY
    assert text.startswith(f"tensor {a.dtype.name} shape {list(a.shape)}, {a.size:,} values")
    assert all(e in text for e in expected), text


def test_tools_returning_tensors_declare_no_output_schema() -> None:
    assert result_schema(protocol.tensor_schema("float32")) is None
    assert result_schema({"type": "array", "items": protocol.tensor_schema(None)}) is None
    assert result_schema({"type": "number"}) is not None
