"""Random-weight Stable Diffusion pipelines built offline, for tests, demos and benchmarks.

`tiny` is small enough that a whole AP run with its sample grid takes seconds on a laptop CPU.
`sd14` has the real SD 1.4 shapes (UNet 320/640/1280/1280, CLIP ViT-L/14 text encoder, SD VAE)
with random weights, so that memory and time can be measured without the model hub.
Both ship a CLIP tokenizer whose merges spell a few hundred common words
(`data/common_words.txt`), so the engine's default vocabulary works on them as on real CLIP.
"""

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from core.erasure.word_tokenizer import write_word_tokenizer

ARCHES = ("tiny", "sd14")

# The scaled-linear schedule every SD 1.x checkpoint ships with (DDIM-compatible).
_SD_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

_UNET: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "sample_size": 8,  # 8×8 latents: per-op overhead, not FLOPs, dominates at this size
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 16,
    },
    "sd14": {
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": (
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "norm_eps": 1e-5,
        "mid_block_scale_factor": 1,
    },
}

_VAE: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (16, 32, 32),  # scale factor 4: 8×8 latents decode to 32×32
        "layers_per_block": 1,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 3,
        "up_block_types": ("UpDecoderBlock2D",) * 3,
        "latent_channels": 4,
        "norm_num_groups": 16,
        "sample_size": 32,
    },
    "sd14": {
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "act_fn": "silu",
        "sample_size": 512,
    },
}

_TEXT: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "projection_dim": 32,
        "hidden_act": "quick_gelu",
    },
    "sd14": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
        "vocab_size": 49408,  # CLIP's; our offline tokenizer uses the first few hundred ids
    },
}


def common_words() -> list[str]:
    """The word list the offline tokenizer spells, most frequent first."""
    text = resources.files("core.erasure").joinpath("data/common_words.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _model_index() -> dict[str, Any]:
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def make_tiny_model(path: Path, arch: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight diffusers StableDiffusionPipeline folder to `path` and return it.

    Loads with `StableDiffusionPipeline.from_pretrained(path)`. Same `arch` and `seed` give the
    same weights, so tests can rebuild a model and compare.
    """
    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHES)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = write_word_tokenizer(common_words(), path / "tokenizer")
    vocab_size = len(CLIPTokenizer.from_pretrained(tokenizer_dir))

    torch.manual_seed(seed)
    text_config = {"vocab_size": vocab_size, **_TEXT[arch]}
    # CLIP's token ids: the tokenizer's BOS/EOS are its last two entries.
    text_config.update(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=1)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    del text_encoder
    # typed Any: diffusers' lazily imported classes hide save_pretrained from type checkers
    parts: dict[str, Any] = {
        "unet": UNet2DConditionModel(**_UNET[arch]),
        "vae": AutoencoderKL(**_VAE[arch]),
    }
    for name, part in parts.items():
        part.save_pretrained(path / name, safe_serialization=True)
    scheduler: Any = DDIMScheduler(**_SD_SCHEDULER)
    scheduler.save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(_model_index(), indent=2))
    return path
