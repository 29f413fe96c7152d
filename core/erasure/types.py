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
    concepts: list[str] = Field(min_length=1, description="Concepts to erase, e.g. 'a cat'.")
    method: Method = Method.AP
    train_method: TrainMethod = TrainMethod.XATTN
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'.")
    precision: Precision = Precision.FP32
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
