"""Must show 2: for each train_method only the trained subset differs from the base model; every
other parameter is bitwise equal. Also: the subsets are the ones algorithm.md §5 names, on the
real SD 1.4 UNet layout."""

from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import UNet2DConditionModel
from erasure_helpers import fast_config
from safetensors.torch import load_file

from core.erasure.parameters import TrainedSubset, trained_parameter_names
from core.erasure.runner import erase
from core.erasure.tiny import _UNET
from core.hyperparameters import TrainMethod


@pytest.mark.parametrize("train_method", list(TrainMethod))
def test_only_the_trained_subset_changes(
    tiny_model: Path, tmp_path: Path, train_method: TrainMethod
) -> None:
    # a large learning rate so that every trained tensor visibly moves in two updates
    config = fast_config(
        tiny_model, train_method=train_method, hyperparameters={"iterations": 2, "lr": 1e-2}
    )
    erase(config, tmp_path)
    base = load_file(tiny_model / "unet" / "diffusion_pytorch_model.safetensors")
    erased = load_file(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    subset = set(load_file(tmp_path / "delta.safetensors"))
    changed = {name for name in base if not torch.equal(base[name], erased[name])}
    assert changed, "training changed nothing"
    assert changed <= subset
    assert subset == set(
        trained_parameter_names(
            UNet2DConditionModel.from_pretrained(tmp_path / "unet"), train_method
        )
    )


@pytest.fixture(scope="module")
def sd14_unet() -> Any:
    """The SD 1.4 UNet layout without allocating its 3.4 GB: parameters on the meta device."""
    with torch.device("meta"):
        return UNet2DConditionModel(**_UNET["sd14"])


def test_subsets_on_the_sd14_layout(sd14_unet: Any) -> None:
    names = {m: set(trained_parameter_names(sd14_unet, m)) for m in TrainMethod}
    every = {n for n, _ in sd14_unet.named_parameters()}
    assert sum(p.numel() for p in sd14_unet.parameters()) == 859_520_964  # SD 1.4's UNet
    assert names[TrainMethod.FULL] == every
    assert names[TrainMethod.XATTN] and all(".attn2." in n for n in names[TrainMethod.XATTN])
    # 16 transformer blocks, each cross-attention with to_q, to_k, to_v (weights) and to_out (w, b)
    assert len(names[TrainMethod.XATTN]) == 16 * 5
    assert all(".attn1." in n for n in names[TrainMethod.SELFATTN])
    assert names[TrainMethod.XATTN_KV] == {
        n for n in names[TrainMethod.XATTN] if ".to_k." in n or ".to_v." in n
    }
    noxattn = names[TrainMethod.NOXATTN]
    assert not noxattn & names[TrainMethod.XATTN]
    frozen_prefixes = ("time_embedding.", "conv_norm_out.", "conv_out.")
    assert not any(n.startswith(frozen_prefixes) for n in noxattn)
    assert (
        noxattn | names[TrainMethod.XATTN] | {n for n in every if n.startswith(frozen_prefixes)}
        == every
    )


def test_frozen_reference_is_the_subset_only(tiny_model: Path) -> None:
    """θ is kept as a copy of the trained subset, not of the UNet, and still gives θ's output."""
    unet = UNet2DConditionModel.from_pretrained(tiny_model / "unet")
    subset = TrainedSubset(unet, TrainMethod.XATTN)
    full_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    assert subset.nbytes() < full_bytes / 2
    z, e = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32)
    t = torch.tensor([500])
    with torch.no_grad():
        before = unet(z, t, encoder_hidden_states=e).sample
        for p in subset.trainable():
            p.add_(0.1)
        after = unet(z, t, encoder_hidden_states=e).sample
        frozen = subset.frozen_forward(z, t, encoder_hidden_states=e).sample
    assert not torch.equal(before, after)
    assert torch.equal(before, frozen)
