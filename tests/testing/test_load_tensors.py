"""``scopegen.testing.load`` hands tensors over as a client does: arrays in, numpy arrays out."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch

import scopegen.testing

IFACE = Path(__file__).resolve().parents[1] / "interfaces" / "tensor_echo.py"


def test_tensors_round_trip_decoded_not_as_raw_json() -> None:
    with scopegen.testing.load(IFACE) as iface:
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        out = iface.echo_numpy(a)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        assert out.tolist() == a.tolist()
        bf16 = iface.echo_torch(torch.ones(2, dtype=torch.bfloat16))
        assert bf16.dtype == ml_dtypes.bfloat16 and bf16.tolist() == [1.0, 1.0]
        hidden = iface.hidden(2)
        assert hidden["layer"] == 2 and hidden["hidden"].shape == (4, 2)
        bare = iface.bare()
        assert bare["empty"].shape == (2, 0) and bare["n"] == 1.5
        assert iface.as_list() == [0.0, 1.0, 2.0]  # typed as JSON: still a list
        with pytest.raises(scopegen.testing.CallError) as err:
            iface.add_float32(np.zeros(2), np.zeros(2, dtype=np.float32))
        assert err.value.code == "invalid_arguments"
