"""The precision option: bf16 autocast trains (parameters stay fp32) and computes differently;
bf16 and fp16 lower the erasure loss as fp32 does, fp16 through a gradient scaler; `auto` is bf16
on a GPU and fp32 on the CPU; TF32 is switched on for CUDA runs."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from erasure_helpers import fast_config, held_out_erasure_loss, prepared
from safetensors.torch import load_file

from core.erasure.models import autocast, configure_device, resolve_precision
from core.erasure.runner import erase
from core.erasure.trainer import Trainer
from core.hyperparameters import Precision


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


UPDATES = 15  # the held-out loss halves by here on the tiny model (then oscillates at lr 1e-3)


@pytest.fixture(scope="module")
def fp32_curve(tiny_model: Path) -> tuple[float, float]:
    return _loss_before_after(tiny_model, "fp32")


def _loss_before_after(tiny_model: Path, precision: str) -> tuple[float, float]:
    """Held-out erasure loss (at fixed draws) before and after UPDATES ESD updates."""
    config = fast_config(
        tiny_model, method="esd", precision=precision, hyperparameters={"lr": 1e-3}
    )
    _, run = prepared(config)
    trainer = Trainer(run.setup, seed=0)
    before = held_out_erasure_loss(trainer, seed=123, draws=8)
    for _ in range(UPDATES):
        trainer.unet_step()
    after = held_out_erasure_loss(trainer, seed=123, draws=8)
    if precision == "fp16":  # the scaler ran: it scales the loss up (2^16 at start)
        assert trainer.scaler is not None and trainer.scaler.get_scale() > 1
    else:
        assert trainer.scaler is None
    return before, after


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_lowers_the_erasure_loss_like_fp32(
    tiny_model: Path, fp32_curve: tuple[float, float], precision: str
) -> None:
    fp32_before, fp32_after = fp32_curve
    before, after = _loss_before_after(tiny_model, precision)
    assert after < 0.5 * before  # it learns
    # ... about as much as fp32 (same draws, same lr); the gap is rounding, not lost gradients
    assert after / before < 1.5 * fp32_after / fp32_before
    assert before == pytest.approx(fp32_before, rel=0.15)  # same model and draws, rounded


def test_fp16_gradients_underflow_without_a_scaler_and_survive_with_one() -> None:
    """Why fp16 needs the scaler: a small loss's fp16 gradients flush to zero; scaled, they do not.
    (bf16 has fp32's exponent range.)"""
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64)

    def grad(scale: float, precision: Precision) -> torch.Tensor:
        layer.zero_grad()
        with autocast(torch.device("cpu"), precision):
            out = layer(x)
        (out.float().square().mean() * 3e-7 * scale).backward()  # a small loss
        assert layer.weight.grad is not None
        return layer.weight.grad / scale

    exact = grad(1.0, Precision.FP32)
    assert exact.abs().max() > 0
    assert torch.count_nonzero(grad(1.0, Precision.FP16)) == 0  # silently all zero
    scaled = grad(2.0**16, Precision.FP16)
    assert torch.linalg.vector_norm(scaled - exact) < 0.02 * torch.linalg.vector_norm(exact)


def test_auto_precision_is_bf16_on_a_gpu_and_fp32_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_precision(Precision.AUTO, torch.device("cpu")) == Precision.FP32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # no GPU here
    assert resolve_precision(Precision.AUTO, torch.device("cuda")) == Precision.BF16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(Precision.AUTO, torch.device("cuda")) == Precision.FP32
    assert resolve_precision(Precision.FP16, torch.device("cuda")) == Precision.FP16


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_on_for_cuda_runs_unless_turned_off(tf32_flags: None) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    configure_device(torch.device("cpu"), allow_tf32=True)
    assert not torch.backends.cuda.matmul.allow_tf32  # CPU runs leave the process alone
    configure_device(torch.device("cuda"), allow_tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    configure_device(torch.device("cuda"), allow_tf32=False)
    assert not torch.backends.cuda.matmul.allow_tf32


def test_the_manifest_names_the_resolved_precision(tiny_model: Path, tmp_path: Path) -> None:
    import json

    erase(fast_config(tiny_model, hyperparameters={"iterations": 1}), tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["precision"] == "fp32"
