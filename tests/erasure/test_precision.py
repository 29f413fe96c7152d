"""The precision option: bf16 autocast trains (parameters stay fp32) and computes differently."""

from pathlib import Path

import torch
from erasure_helpers import fast_config
from safetensors.torch import load_file

from core.erasure.runner import erase


def test_bf16_autocast_run(tiny_model: Path, tmp_path: Path) -> None:
    erase(fast_config(tiny_model, hyperparameters={"iterations": 2}), tmp_path / "fp32")
    result = erase(
        fast_config(tiny_model, precision="bf16", hyperparameters={"iterations": 2}),
        tmp_path / "bf16",
    )
    assert result.status == "succeeded"
    fp32, bf16 = (
        load_file(tmp_path / "fp32" / "delta.safetensors"),
        load_file(tmp_path / "bf16" / "delta.safetensors"),
    )
    assert all(t.dtype == torch.float32 for t in bf16.values())
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
