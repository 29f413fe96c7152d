"""make_tiny_model: the offline test pipeline others build on, and the SD 1.4-shaped one."""

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel

from core.erasure.tiny import _TEXT, _UNET, _VAE, make_tiny_model


def test_tiny_model_is_a_loadable_sd_pipeline(tiny_model: Path) -> None:
    pipeline = StableDiffusionPipeline.from_pretrained(tiny_model)
    assert pipeline.safety_checker is None
    config: Any = pipeline.scheduler.config  # diffusers' config attributes are dynamic
    assert isinstance(pipeline.scheduler, DDIMScheduler)
    assert config.beta_schedule == "scaled_linear"
    assert config.prediction_type == "epsilon"
    tokenizer = pipeline.tokenizer
    assert tokenizer.model_max_length == 77
    for word in ("cat", "dog", "church", "parachute", "tench", "airplane"):
        assert len(tokenizer(word).input_ids) == 3, word  # <start> word <end>: one token


def test_same_seed_same_weights(tiny_model: Path, tmp_path: Path) -> None:
    again = make_tiny_model(tmp_path / "again")
    other = make_tiny_model(tmp_path / "other", seed=1)
    name = "unet/diffusion_pytorch_model.safetensors"
    first, second, third = (load_file(p / name) for p in (tiny_model, again, other))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_sd14_arch_has_the_real_shapes() -> None:
    """Built on the meta device: the shapes without the 4 GB of weights."""
    unet: Any
    vae: Any
    with torch.device("meta"):
        unet = UNet2DConditionModel(**_UNET["sd14"])
        text = CLIPTextModel(CLIPTextConfig(**_TEXT["sd14"]))
        vae = AutoencoderKL(**_VAE["sd14"])

    def count(module: Any) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(unet) == 859_520_964
    assert count(text) == 123_060_480
    assert count(vae) == 83_653_863
    assert unet.config.cross_attention_dim == 768 and unet.config.sample_size == 64
    assert text.config.max_position_embeddings == 77 and text.config.hidden_size == 768
