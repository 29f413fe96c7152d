"""Offline stand-ins for what an operator supplies: a tiny random-weight CLIP folder (config,
weights and a word tokenizer, as transformers' `CLIPModel.from_pretrained` reads them) and an
"erased" model (the tiny SD model's cross-attention weights, perturbed, as a delta file).
A module of its own (not conftest.py) so tests import it by a name no other folder uses."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

from core.erasure.models import content_hash
from core.erasure.outputs import DELTA, MANIFEST
from core.erasure.tiny import common_words
from core.erasure.word_tokenizer import write_word_tokenizer

CLIP_IMAGE_SIZE = 32


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    tokenizer = write_word_tokenizer(common_words(), folder)
    vocab_size = len(json.loads((tokenizer / "vocab.json").read_text()))
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1,
            "pad_token_id": vocab_size - 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def make_erased_output(model: Path, folder: Path, concepts: list[str], seed: int = 0) -> Path:
    """An erase output folder whose delta is the base's attn2 weights plus noise."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model / "unet")
    generator = torch.Generator().manual_seed(seed)
    delta = {
        name: (value + 0.05 * torch.randn(value.shape, generator=generator)).contiguous()
        for name, value in unet.state_dict().items()
        if ".attn2." in name
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(delta, folder / DELTA, metadata={"base_model_hash": content_hash(model)})
    (folder / MANIFEST).write_text(json.dumps({"concepts": concepts}))
    return folder
