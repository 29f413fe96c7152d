"""The engine's public contract: what a run takes, what it reports while running, what it returns,
and how it fails. Torch-free, so the worker can build a config and map errors cheaply."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.hyperparameters import Hyperparameters, Method, Precision, TrainMethod


class ErasureConfig(BaseModel):
    """One erasure run. Everything that determines the result is here (and in the manifest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="A diffusers pipeline folder, or a hub id where reachable.")
    model_name: str | None = Field(
        None,
        description="What the manifest calls the base model (a registry name such as 'demo'); "
        "None = `model` as given. Keeps a worker's folder path out of what users see.",
    )
    concepts: list[str] = Field(min_length=1, description="Concepts to erase, e.g. 'a cat'.")
    method: Method = Method.AP
    train_method: TrainMethod = TrainMethod.XATTN
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'.")
    precision: Precision = Field(
        Precision.AUTO, description="auto = bf16 autocast on a bf16-capable GPU, else fp32."
    )
    vocabulary: list[str] | None = Field(None, description="Candidate words; None = default.")
    sample_prompts: list[str] = Field(default_factory=list, description="Control prompts (grid).")
    checkpoint_every: int = Field(100, ge=0, description="Updates between checkpoints; 0 = none.")
    checkpoint_total_limit: int = Field(2, ge=1, description="Checkpoints kept (newest).")
    cache_dir: Path | None = Field(
        None, description="Vocabulary embeddings and model content hashes; None = no cache."
    )
    # None: the model's own defaults (its folder's sampling_defaults.json, else SD's 25 / 7.5).
    grid_steps: int | None = Field(None, ge=1, description="DDIM steps for the sample grid.")
    grid_guidance: float | None = Field(None, ge=0, description="CFG scale for the sample grid.")
    # Memory and speed: none of these changes what a run computes beyond rounding, so none is in
    # the checkpoint fingerprint (docs/performance.md measures each).
    gradient_checkpointing: bool = Field(
        False, description="Recompute UNet activations in backward: less memory, ~1/3 more time."
    )
    offload: bool = Field(
        True, description="Free the text encoder and VAE while training; reload for the grid."
    )
    allow_tf32: bool = Field(True, description="TF32 for fp32 matmuls on CUDA.")
    channels_last: bool = Field(False, description="Channels-last UNet layout (GPU convs).")
    compile_unet: bool = Field(False, description="torch.compile the UNet (slow first update).")


@dataclass(frozen=True)
class Progress:
    step: int  # UNet updates done
    total: int
    losses: dict[str, float]  # e.g. {"erase": .., "preserve": .., "adversary": ..}
    adversarial_concepts: dict[str, str]  # erased concept -> candidate drawn this update (AP)
    elapsed_s: float


@dataclass
class Hooks:
    """How a caller (the CLI, a Celery task) observes and steers a run. All optional."""

    on_progress: Callable[[Progress], None] | None = None
    should_cancel: Callable[[], bool] | None = None  # polled at every step boundary
    on_checkpoint: Callable[[int, Path], None] | None = None  # (step, folder) once complete
    on_resume: Callable[[int], None] | None = None  # step the run resumed from


@dataclass(frozen=True)
class ErasureResult:
    status: Literal["succeeded", "cancelled"]
    steps_completed: int
    total_steps: int
    out_dir: Path
    outputs: list[str] = field(default_factory=list)  # paths relative to out_dir; [] if cancelled
    resumed_from: int | None = None
    final_losses: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    # Settings the engine had to change to run (e.g. k_closest cut to the vocabulary's size),
    # one sentence each; also in the manifest.
    warnings: list[str] = field(default_factory=list)


class ErasureError(Exception):
    """A failure the user can act on. `code` is stable and machine-readable."""

    code = "erasure_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelNotFoundError(ErasureError):
    code = "model_not_found"


class BadConceptError(ErasureError):
    code = "bad_concept"


class OutOfMemoryError(ErasureError):
    code = "out_of_memory"


class DivergedError(ErasureError):
    """A loss became NaN or infinite: the run stops at once instead of training on garbage."""

    code = "diverged"


class CheckpointError(ErasureError):
    code = "checkpoint_corrupt"


class CheckpointMismatchError(CheckpointError):
    """The checkpoint is intact but belongs to a run with other settings: resuming it would mix
    two configurations. Nothing is damaged, so this is not `checkpoint_corrupt`."""

    code = "checkpoint_mismatch"


class WrongBaseModelError(ErasureError):
    """A delta applied to a base other than the one it was trained on: the names and shapes may
    fit, the result is still not the erased model."""

    code = "wrong_base_model"
