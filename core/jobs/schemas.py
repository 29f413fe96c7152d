"""The job API's bodies: what a client sends and what it gets back (pydantic, torch-free).

`JobCreate` checks shape and the method's own ranges (via `core.hyperparameters`); the operator's
limits, which depend on Settings, are checked by `core.jobs.validation`.
"""

import unicodedata
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.hyperparameters import Hyperparameters, Method, TrainMethod
from core.jobs.models import Artifact, Job, JobEvent
from core.jobs.status import JobStatus

# The largest seed every backend stores (signed 64-bit column).
MAX_SEED = 2**63 - 1


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "demo",
                    "concepts": ["cat"],
                    "method": "ap",
                    "hyperparameters": {"iterations": 200},
                    "sample_prompts": ["a photo of a cat", "a photo of a dog"],
                    "metadata": {"ticket": "SAFE-42"},
                }
            ]
        },
    )

    model: str = Field(min_length=1, max_length=200, description="A registered model name.")
    concepts: list[str] = Field(min_length=1, description="Concepts to erase, e.g. 'cat'.")
    method: Method = Method.AP
    train_method: TrainMethod = TrainMethod.XATTN
    hyperparameters: Hyperparameters = Field(
        default_factory=Hyperparameters,
        description="Any subset of the engine's hyperparameters; the rest keep their defaults.",
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    sample_prompts: list[str] = Field(default_factory=list, description="Prompts of the grid.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Free string labels.")

    @field_validator("concepts")
    @classmethod
    def _concepts_are_distinct_words(cls, concepts: list[str]) -> list[str]:
        cleaned = [concept.strip() for concept in concepts]
        if any(not concept for concept in cleaned):
            raise ValueError("concepts must not be empty or blank")
        if any(_has_control_characters(concept) for concept in cleaned):
            raise ValueError("concepts must not contain control characters")
        folded = [concept.casefold() for concept in cleaned]
        if len(set(folded)) != len(folded):
            raise ValueError("concepts must be distinct (case-insensitive)")
        return cleaned

    @field_validator("sample_prompts")
    @classmethod
    def _prompts_not_blank(cls, prompts: list[str]) -> list[str]:
        cleaned = [prompt.strip() for prompt in prompts]
        if any(not prompt for prompt in cleaned):
            raise ValueError("sample prompts must not be empty or blank")
        if any(_has_control_characters(prompt) for prompt in cleaned):
            raise ValueError("sample prompts must not contain control characters")
        return cleaned

    @field_validator("metadata")
    @classmethod
    def _metadata_is_printable(cls, metadata: dict[str, str]) -> dict[str, str]:
        if any(_has_control_characters(key + value) for key, value in metadata.items()):
            raise ValueError("metadata keys and values must not contain control characters")
        return metadata

    def hyperparameters_set(self) -> dict[str, Any]:
        """Only what the caller set: the engine fills the rest with its defaults at run time."""
        return self.hyperparameters.model_dump(mode="json", exclude_unset=True)


def _has_control_characters(text: str) -> bool:
    """Text meant for a tokenizer, a grid caption or a label has no business carrying NUL,
    escape sequences or newlines (which would also break log lines)."""
    return any(unicodedata.category(character) == "Cc" for character in text)


class ProgressView(BaseModel):
    step: int
    total: int
    fraction: float
    losses: dict[str, float] | None = None
    eta_seconds: float | None = Field(
        None,
        description="Remaining time at the rate of the current attempt (its own steps over its "
        "own time, after a resume too), as of `updated_at`; null until that attempt has stepped.",
    )


class ErrorView(BaseModel):
    code: str
    message: str | None = None


class JobView(BaseModel):
    id: str
    status: JobStatus
    model: str
    concepts: list[str]
    method: Method
    train_method: TrainMethod
    hyperparameters: dict[str, Any]
    seed: int
    sample_prompts: list[str]
    metadata: dict[str, str]
    attempt: int
    cancel_requested: bool
    progress: ProgressView | None
    error: ErrorView | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            concepts=list(job.concepts),
            method=Method(job.method),
            train_method=TrainMethod(job.train_method),
            hyperparameters=dict(job.hyperparameters),
            seed=job.seed,
            sample_prompts=list(job.sample_prompts),
            metadata=dict(job.metadata_),
            attempt=job.attempt,
            cancel_requested=job.cancel_requested,
            progress=_progress(job),
            error=ErrorView(code=job.error_code, message=job.error_message)
            if job.error_code
            else None,
            result=job.result,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


def _progress(job: Job) -> ProgressView | None:
    if job.progress_step is None or not job.progress_total:
        return None
    step, total = job.progress_step, job.progress_total
    return ProgressView(
        step=step,
        total=total,
        fraction=min(step / total, 1.0),
        losses=job.progress_losses,
        eta_seconds=_eta_seconds(job, step, total) if job.status == JobStatus.RUNNING else None,
    )


def _eta_seconds(job: Job, step: int, total: int) -> float | None:
    """Remaining steps at the current attempt's rate: the steps it did since it started (from
    scratch or from a checkpoint) over the time it took. Time spent by an earlier, dead worker
    or waiting in the queue says nothing about this one's speed; steps restored from a checkpoint
    were not done by it. None until the attempt has reported a step of its own.

    Measured against updated_at (the last progress write), not the wall clock, so that the
    representation (and its ETag) only changes when the job does.
    """
    if job.attempt_started_at is None or job.attempt_start_step is None:
        return None
    done = step - job.attempt_start_step
    if done <= 0:
        return None
    elapsed: timedelta = job.updated_at - job.attempt_started_at
    return max(elapsed.total_seconds(), 0.0) / done * max(total - step, 0)


class JobPage(BaseModel):
    items: list[JobView]
    has_more: bool
    next_cursor: str | None = Field(None, description="Pass as `after` for the next page.")


class EventView(BaseModel):
    id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: JobEvent) -> "EventView":
        return cls(id=event.id, kind=event.kind, data=event.data, created_at=event.created_at)


class EventList(BaseModel):
    items: list[EventView]
    finished: bool = Field(description="True once the job's final event is in the log.")


class ArtifactView(BaseModel):
    name: str
    kind: str
    bytes: int
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, artifact: Artifact) -> "ArtifactView":
        return cls(
            name=artifact.name,
            kind=artifact.kind,
            bytes=artifact.bytes,
            sha256=artifact.sha256,
            created_at=artifact.created_at,
        )


class ArtifactManifest(BaseModel):
    job_id: str
    artifacts: list[ArtifactView]


class ModelView(BaseModel):
    name: str
    kind: str
    available: bool


class ModelList(BaseModel):
    items: list[ModelView]
