"""Loading the base model: pipeline parts, device, precision, content hash, typed errors."""

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from core.erasure.types import ErasureError, ModelNotFoundError, OutOfMemoryError
from core.hyperparameters import Precision

_AUTOCAST_DTYPES = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}
_HASH_CHUNK_BYTES = 1 << 20
_CPU_OOM_MESSAGE = "can't allocate memory"
# Optional file in a pipeline folder: how that model samples well, in diffusers' argument names.
SAMPLING_DEFAULTS_FILE = "sampling_defaults.json"
CONTENT_HASH_DIR = "content-hashes"  # under a cache_dir: one small file per folder state


@dataclass(frozen=True)
class SamplingDefaults:
    """Steps and CFG scale for the model's sample grid. SD 1.x's usual 25 DDIM steps at CFG 7.5,
    unless the folder's `sampling_defaults.json` says otherwise (e.g. the toy model, which
    over-saturates above CFG 3): {"num_inference_steps": 20, "guidance_scale": 3.0}."""

    steps: int = 25
    guidance: float = 7.5

    @classmethod
    def load(cls, folder: Path) -> "SamplingDefaults":
        file = folder / SAMPLING_DEFAULTS_FILE
        if not file.is_file():
            return cls()
        try:
            raw = json.loads(file.read_text())
            defaults = cls(
                steps=int(raw.get("num_inference_steps", cls.steps)),
                guidance=float(raw.get("guidance_scale", cls.guidance)),
            )
        except (ValueError, TypeError, AttributeError) as error:
            raise ModelNotFoundError(f"{file} is not valid sampling defaults: {error}") from error
        if defaults.steps < 1 or defaults.guidance < 0:
            raise ModelNotFoundError(f"{file}: steps must be ≥ 1 and guidance ≥ 0, got {raw}")
        return defaults

    def save(self, folder: Path) -> None:
        payload = {"num_inference_steps": self.steps, "guidance_scale": self.guidance}
        (folder / SAMPLING_DEFAULTS_FILE).write_text(json.dumps(payload, indent=2) + "\n")


@dataclass
class BaseModel:
    """The loaded base pipeline and where it came from."""

    # diffusers registers pipeline parts as dynamic attributes, which type checkers cannot see
    pipeline: Any  # StableDiffusionPipeline
    scheduler: Any  # DDIMScheduler  # the schedule the x_t sampler and x̂0 use (ᾱ per timestep)
    folder: Path  # local folder holding the files (a hub snapshot for hub ids)
    model_id: str  # as the user gave it
    content_hash: str  # sha256 over every file of the folder, names included
    sampling: SamplingDefaults


def resolve_device(device: str) -> torch.device:
    """'auto' is CUDA when present, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ErasureError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ErasureError(f"device {device!r} requested but CUDA is not available here")
    return resolved


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """`auto` is bf16 autocast on a GPU with bf16 support (fp32 master weights: same result
    quality at about twice fp32's speed), fp32 elsewhere (CPUs gain little from bf16)."""
    if precision != Precision.AUTO:
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return Precision.BF16
    return Precision.FP32


def configure_device(device: torch.device, allow_tf32: bool) -> None:
    """TF32 for fp32 matmuls and convolutions on CUDA (Ampere and later): ~8× the fp32 matmul
    rate for a 10-bit mantissa, which the loss's noise far exceeds. Process-wide: a worker runs
    one job at a time."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[None]:
    """Mixed precision for forward passes; parameters and optimizer states stay fp32."""
    if precision in (Precision.FP32, Precision.AUTO):  # AUTO is resolved before training
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler | None:
    """fp16 needs its loss scaled before backward (and the gradients unscaled before Adam):
    fp16's smallest normal number is 6e-5, and x0-space gradients of a small loss fall below it
    and flush to zero, so an unscaled fp16 run erases weakly and says nothing. bf16 has fp32's
    range and needs no scaler."""
    if precision != Precision.FP16:
        return None
    return torch.amp.GradScaler(device.type)


def speed_up_unet(unet: Any, device: torch.device, channels_last: bool, compile_unet: bool) -> None:
    """GPU fast path for the UNet: PyTorch's fused attention (SDPA) on every attention layer,
    optionally channels-last memory layout and `torch.compile`. In place: the runner's frozen
    reference and the sample grid use the same module."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor2_0())
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    if compile_unet:
        unet.compile()


# The parts a run needs only to embed prompts (text encoder) and to decode the sample grid (VAE).
_OFFLOADABLE = ("text_encoder", "vae")


def offload_parts(base: BaseModel) -> None:
    """Free the text encoder's and the VAE's weights once every training prompt is embedded:
    moved to the meta device they hold no memory on any device (0.77 GiB on SD 1.x). The weights
    come back from the model folder, unchanged, for the sample grid (`restore_parts`)."""
    for name in _OFFLOADABLE:
        getattr(base.pipeline, name).to("meta")


def restore_parts(base: BaseModel, device: torch.device) -> None:
    """Reload what `offload_parts` freed, from the same files; a no-op for parts still loaded."""
    for name in _OFFLOADABLE:
        module = getattr(base.pipeline, name)
        if next(module.parameters()).device.type != "meta":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fresh = type(module).from_pretrained(
                base.folder, subfolder=name, torch_dtype=torch.float32
            )
        fresh.requires_grad_(False)
        fresh.eval()
        with translate_oom(device):
            fresh.to(device)
        base.pipeline.register_modules(**{name: fresh})


def local_folder(model: str) -> Path:
    """The folder holding `model`: itself if it is a directory, else a hub snapshot."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"{model!r} is not a diffusers pipeline folder (no model_index.json in it)"
            )
        return path
    if path.is_absolute() or model.startswith((".", "~")):  # a path, not a hub id
        raise ModelNotFoundError(f"model folder {model!r} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=["*.json", "*.txt", "*.safetensors"]))
    except Exception as error:  # any hub failure means: we cannot get this model
        raise ModelNotFoundError(
            f"model {model!r} is neither a local diffusers folder nor a reachable hub id "
            f"({type(error).__name__}); pass the path of a folder written by save_pretrained"
        ) from error


def content_hash(folder: Path, cache_dir: Path | None = None) -> str:
    """sha256 of the folder's files (relative names and bytes), so caches and manifests name
    the exact weights a run used, not a path that may later hold something else.

    Reading gigabytes for every job is slow on network disks, so with a `cache_dir` the digest
    is remembered per (path, size, modification time) of every file and the files are read only
    when one of those changed, the bet git's index makes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if cache_dir is None:
        return _hash_files(folder, files)
    listing = hashlib.sha256()
    for file in files:
        stat = file.stat()
        listing.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    entry = cache_dir / CONTENT_HASH_DIR / listing.hexdigest()
    if entry.is_file():
        return entry.read_text().strip()
    digest = _hash_files(folder, files)
    entry.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        out.write(digest)
    os.replace(temp, entry)  # atomic: concurrent jobs never read half a digest
    return digest


def _hash_files(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def load_base_model(model: str, device: torch.device, cache_dir: Path | None = None) -> BaseModel:
    """Load the pipeline in fp32 on `device`, every weight frozen (training unfreezes a subset)."""
    folder = local_folder(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline = StableDiffusionPipeline.from_pretrained(
                folder,
                torch_dtype=torch.float32,
                safety_checker=None,
                requires_safety_checker=False,
            )
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"cannot load a Stable Diffusion pipeline from {model!r}: {error}"
        ) from error
    pipeline.set_progress_bar_config(disable=True)
    scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    if scheduler.config.prediction_type != "epsilon":
        raise ErasureError(
            f"{model!r} predicts {scheduler.config.prediction_type!r}; "
            "only epsilon-prediction models (SD 1.x style) are supported"
        )
    pipeline.scheduler = scheduler
    with translate_oom(device):
        pipeline.to(device)
    for module in (pipeline.unet, pipeline.text_encoder, pipeline.vae):
        module.requires_grad_(False)
        module.eval()
    return BaseModel(
        pipeline,
        scheduler,
        folder,
        model,
        content_hash(folder, cache_dir),
        SamplingDefaults.load(folder),
    )


@contextlib.contextmanager
def translate_oom(device: torch.device) -> Iterator[None]:
    """Turn torch's out-of-memory into the engine's typed error with advice a user can act on."""
    advice = (
        f"out of memory on {device}: try gradient_checkpointing, precision bf16, "
        "train_method xattn, a smaller vocabulary_size, or a device with more memory"
    )
    try:
        yield
    except torch.OutOfMemoryError as error:
        raise OutOfMemoryError(f"{advice} ({error})") from error
    except RuntimeError as error:
        if _CPU_OOM_MESSAGE not in str(error):  # the CPU allocator's OOM is a plain RuntimeError
            raise
        raise OutOfMemoryError(f"{advice} ({error})") from error
