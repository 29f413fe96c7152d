"""`apply`: base pipeline + delta.safetensors → an erased diffusers pipeline folder."""

import warnings
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open
from safetensors.torch import load_file

from core.erasure.models import local_folder
from core.erasure.types import ErasureError


def apply_delta(model: str, delta: Path, out: Path) -> Path:
    """Load `model`, overwrite its UNet parameters with the delta's (same diffusers names), and
    save the whole pipeline to `out` (safetensors). Names and shapes must match the base's UNet;
    whether it is the very base the delta was trained on is `delta_base_hash`'s to tell."""
    folder = local_folder(model)
    delta = Path(delta)
    if not delta.is_file():
        raise ErasureError(f"delta {delta} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = StableDiffusionPipeline.from_pretrained(
            folder, torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False
        )
    values = load_file(delta)
    parameters = dict(pipeline.unet.named_parameters())
    unknown = sorted(set(values) - set(parameters))
    if unknown:
        raise ErasureError(f"delta has parameters this UNet lacks, e.g. {unknown[:3]}")
    with torch.no_grad():
        for name, value in values.items():
            if parameters[name].shape != value.shape:
                raise ErasureError(
                    f"delta parameter {name} has shape {tuple(value.shape)}, "
                    f"the UNet's is {tuple(parameters[name].shape)}: another base model?"
                )
            parameters[name].copy_(value)
    pipeline.save_pretrained(Path(out), safe_serialization=True)
    return Path(out)


def delta_base_hash(delta: Path) -> str | None:
    """The content hash of the base model the delta was trained on, as recorded in it."""
    with safe_open(str(delta), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return metadata.get("base_model_hash")
