"""`apply`: base pipeline + delta.safetensors → an erased diffusers pipeline folder."""

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open
from safetensors.torch import load_file

from core.erasure.models import SAMPLING_DEFAULTS_FILE, content_hash, local_folder
from core.erasure.quiet import quiet_libraries
from core.erasure.types import ErasureError, WrongBaseModelError


@dataclass(frozen=True)
class DeltaOrigin:
    """The base model a delta was trained on, as `write_outputs` recorded it in the file."""

    content_hash: str | None
    model_id: str | None  # the registry name (e.g. 'demo') or the folder the run was given

    def describe(self) -> str:
        short = f"content hash {self.content_hash[:12]}…" if self.content_hash else "unknown hash"
        return f"{self.model_id!r} ({short})" if self.model_id else short


def delta_origin(delta: Path) -> DeltaOrigin:
    with safe_open(str(delta), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return DeltaOrigin(metadata.get("base_model_hash"), metadata.get("base_model_id"))


def delta_base_hash(delta: Path) -> str | None:
    """The content hash of the base model the delta was trained on, as recorded in it."""
    return delta_origin(delta).content_hash


def check_base(folder: Path, delta: Path, cache_dir: Path | None = None) -> bool:
    """Whether `folder` is the very base the delta was trained on (True when the delta does not
    say, as deltas written by hand do not)."""
    trained_on = delta_base_hash(delta)
    return trained_on is None or trained_on == content_hash(folder, cache_dir)


def apply_delta(
    model: str, delta: Path, out: Path, *, force: bool = False, cache_dir: Path | None = None
) -> Path:
    """Load `model`, overwrite its UNet parameters with the delta's (same diffusers names), and
    save the whole pipeline to `out` (safetensors), with the base's sampling defaults.

    A delta is refused on any base but the one it was trained on (`WrongBaseModelError`), before
    anything is written, unless `force`: matching names and shapes do not make it that model."""
    quiet_libraries()
    folder = local_folder(model)
    delta = Path(delta)
    if not delta.is_file():
        raise ErasureError(f"delta {delta} does not exist")
    if not force and not check_base(folder, delta, cache_dir):
        raise WrongBaseModelError(
            f"the delta was trained on {delta_origin(delta).describe()}, not on {model!r}: "
            "apply it to that base (see the job's manifest.json, base_model), or pass --force "
            "to apply it anyway"
        )
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
    out = Path(out)
    pipeline.save_pretrained(out, safe_serialization=True)
    # save_pretrained writes only what diffusers knows; the erased model samples like its base
    if (folder / SAMPLING_DEFAULTS_FILE).is_file():
        shutil.copyfile(folder / SAMPLING_DEFAULTS_FILE, out / SAMPLING_DEFAULTS_FILE)
    return out
