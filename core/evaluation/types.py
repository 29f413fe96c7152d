"""The evaluation stage's contract: what a run takes, what it reports, how it fails. Torch-free."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.evaluation_request import EvaluationRequest

# Files a finished evaluation writes next to the erased model's outputs.
REPORT_FILE = "evaluation.json"
FIGURE_FILE = "evaluation.png"
# Resumable state (scores so far, generated images): not an output, never published.
STATE_DIR = "evaluation-state"

ERASURE = "erasure"
PRESERVATION = "preservation"
PromptKind = Literal["erasure", "preservation"]


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation: a base model, an erased model, the concepts and the plan."""

    model: str  # diffusers folder or hub id of the base model
    erased: Path  # an erase output folder (delta.safetensors) or a full pipeline folder
    concepts: list[str]
    evaluator: str  # spec: "judge", "nudenet", "clip:/folder/of/a/clip/model"
    request: EvaluationRequest = field(default_factory=EvaluationRequest)
    adversarial_concepts: list[str] = field(default_factory=list)  # AP's, for default prompts
    device: str = "auto"
    out_dir: Path | None = None  # where evaluation.json/png go; default: `erased`
    state_dir: Path | None = None  # resumable state; default: <out_dir>/evaluation-state
    cache_dir: Path | None = None  # the engine's model content-hash cache
    batch_size: int = 16  # images per generation call (and per progress step)


@dataclass(frozen=True)
class EvaluationProgress:
    step: int  # images generated and scored so far (base and erased together)
    total: int
    elapsed_s: float


@dataclass
class EvaluationHooks:
    on_progress: Callable[[EvaluationProgress], None] | None = None
    should_cancel: Callable[[], bool] | None = None  # polled between batches
    on_resume: Callable[[int, int], None] | None = None  # (images already done, total)
    on_start: Callable[[int], None] | None = None  # total images, before the first batch


@dataclass(frozen=True)
class EvaluationResult:
    status: Literal["succeeded", "cancelled"]
    steps_completed: int
    total_steps: int
    report: dict[str, Any] = field(default_factory=dict)  # evaluation.json's content
    outputs: list[str] = field(default_factory=list)  # names relative to out_dir
    elapsed_s: float = 0.0  # generation and scoring time, summed over resumed runs
    resumed_from: int | None = None


class EvaluationError(Exception):
    """An evaluation that cannot be made (evaluator cannot read the concept, bad spec, missing
    files). The job still succeeds with its weights; its acceptance is `not_evaluated`."""

    code = "evaluation_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
