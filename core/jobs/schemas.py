"""The job API's bodies: what a client sends and what it gets back (pydantic, torch-free).

`JobCreate` checks shape and the method's own ranges (via `core.hyperparameters`); the operator's
limits, which depend on Settings, are checked by `core.jobs.validation`.
"""

import unicodedata
from datetime import datetime, timedelta
from functools import cache
from math import isfinite
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.evaluation_request import EvaluationRequest
from core.hyperparameters import Hyperparameters, Method, TrainMethod
from core.jobs.models import Artifact, Job, JobEvent
from core.jobs.reads import JobRecord
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
    evaluation: EvaluationRequest = Field(
        default_factory=EvaluationRequest,
        description="The evaluation stage after training: prompts, seeds, sampling and the "
        "acceptance thresholds; omitted fields take their defaults (docs/api.md).",
    )

    @field_validator("model")
    @classmethod
    def _model_is_text(cls, model: str) -> str:
        _refuse_unsafe_text(model, "model")
        return model

    @field_validator("concepts")
    @classmethod
    def _concepts_are_distinct_words(cls, concepts: list[str]) -> list[str]:
        # Kept as sent (lengths are checked as the document states them, on what was sent);
        # surrounding whitespace is dropped when the job is stored (`clean_concepts`).
        for concept in concepts:
            _refuse_unsafe_text(concept, "concepts", visible=True)
        if any(not concept.strip() for concept in concepts):
            raise ValueError("concepts must not be empty or blank")
        folded = [concept.strip().casefold() for concept in concepts]
        if len(set(folded)) != len(folded):
            raise ValueError("concepts must be distinct (case-insensitive)")
        return concepts

    @field_validator("sample_prompts")
    @classmethod
    def _prompts_not_blank(cls, prompts: list[str]) -> list[str]:
        for prompt in prompts:
            _refuse_unsafe_text(prompt, "sample prompts", visible=True)
        if any(not prompt.strip() for prompt in prompts):
            raise ValueError("sample prompts must not be empty or blank")
        return prompts

    @field_validator("metadata")
    @classmethod
    def _metadata_is_printable(cls, metadata: dict[str, str]) -> dict[str, str]:
        for key, value in metadata.items():
            _refuse_unsafe_text(key + value, "metadata keys and values")
        return metadata

    def clean_concepts(self) -> list[str]:
        return [concept.strip() for concept in self.concepts]

    def clean_sample_prompts(self) -> list[str]:
        return [prompt.strip() for prompt in self.sample_prompts]

    def hyperparameters_set(self) -> dict[str, Any]:
        """Only what the caller set: the engine fills the rest with its defaults at run time."""
        return self.hyperparameters.model_dump(mode="json", exclude_unset=True)


# Characters a text field never carries. Control characters (Cc: NUL, escapes, newlines) break
# log lines and captions; lone surrogates (Cs) are not Unicode text at all: no UTF-8 encoder (the
# JSON response, Postgres) can write them, so they would turn every later read into an error.
_REFUSED_EVERYWHERE = frozenset({"Cc", "Cs"})
# What a tokenizer would receive invisibly: format characters (Cf: zero-width spaces and joiners,
# bidi overrides and isolates, the BOM, soft hyphens, tag characters). "Erasing" an invisible
# word, or a concept that displays differently from what is trained, is never what a caller means.
_REFUSED_IN_PROMPTS = _REFUSED_EVERYWHERE | {"Cf"}
# Letters that render as nothing (Hangul fillers, the braille blank).
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _refuse_unsafe_text(text: str, what: str, *, visible: bool = False) -> None:
    refused = _REFUSED_IN_PROMPTS if visible else _REFUSED_EVERYWHERE
    for character in text:
        category = unicodedata.category(character)
        if category in refused or (visible and character in _INVISIBLE_LETTERS):
            raise ValueError(
                f"{what} must not contain {_CATEGORY_NAMES.get(category, 'invisible')} "
                f"characters (found U+{ord(character):04X})"
            )


_CATEGORY_NAMES = {
    "Cc": "control",
    "Cs": "lone surrogate",
    "Cf": "invisible or bidi-control",
}


@cache
def safe_text_pattern(*, visible: bool) -> str:
    """The same rule as a JSON Schema `pattern`, so the OpenAPI document says what is refused
    (a character class of every refused code point range, plus, for visible text, at least one
    non-space character)."""
    ranges: list[tuple[int, int]] = []
    # Surrogates are left out: a JSON Schema validator works on Unicode strings, which cannot hold
    # them (RFC 7493 forbids them in JSON text), so no pattern can mention them; the server
    # refuses them for the same reason.
    refused = (_REFUSED_IN_PROMPTS if visible else _REFUSED_EVERYWHERE) - {"Cs"}
    start: int | None = None
    for code in range(0x110000):
        character = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            bad = start is not None  # continue a run across the gap rather than split it
        else:
            bad = unicodedata.category(character) in refused or (
                visible and character in _INVISIBLE_LETTERS
            )
        if bad and start is None:
            start = code
        elif not bad and start is not None:
            ranges.append((start, code - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    klass = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    body = f"[^{klass}]"
    if visible:
        return f"^{body}*[^\\s{klass}]{body}*$"
    return f"^{body}*$"


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# A job as stored: the ORM entity, or the columns the read path selects under the same names.
StoredJob = Job | JobRecord


class ProgressView(BaseModel):
    stage: str = Field(
        "training",
        description="`training` (step counts UNet updates) or `evaluation` (step counts images "
        "generated and scored, base and erased model together).",
    )
    step: int
    total: int
    fraction: float
    losses: dict[str, float | None] | None = Field(
        None, description="The latest losses; null for a value that was not finite."
    )
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
    evaluation: dict[str, Any] | None = Field(
        None, description="The evaluation section as run (null: the defaults, older jobs)."
    )
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
    def of(cls, job: "StoredJob") -> "JobView":
        # One validation of plain values (pydantic turns the stored strings into the enums and
        # the nested dicts into ProgressView and ErrorView): the read path builds a view per
        # job of every page it serves.
        error_code = job.error_code
        result = job.result
        return cls.model_validate(
            {
                "id": job.id,
                "status": job.status,
                "model": job.model,
                "concepts": _readable_list(job.concepts),
                "method": job.method,
                "train_method": job.train_method,
                "hyperparameters": _readable(job.hyperparameters),
                "seed": job.seed,
                "sample_prompts": _readable_list(job.sample_prompts),
                "metadata": _readable(job.metadata_),
                "evaluation": job.evaluation,
                "attempt": job.attempt,
                "cancel_requested": job.cancel_requested,
                "progress": _progress(job),
                "error": {"code": error_code, "message": job.error_message} if error_code else None,
                "result": _readable(result) if isinstance(result, dict) else None,
                "created_at": job.created_at,
                "updated_at": job.updated_at,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
            }
        )


def _progress(job: "StoredJob") -> dict[str, Any] | None:
    """The ProgressView's fields, or None before the first progress report."""
    step, total = job.progress_step, job.progress_total
    if step is None or not total:
        return None
    return {
        "stage": job.progress_stage or "training",
        "step": step,
        "total": total,
        "fraction": min(step / total, 1.0),
        "losses": _losses(job.progress_losses),
        "eta_seconds": _eta_seconds(job, step, total) if job.status == JobStatus.RUNNING else None,
    }


def _losses(stored: Any) -> dict[str, float | None] | None:
    """Whatever a progress row holds (a NaN read back from SQLite, null, a list, a string from an
    older worker) reads as a dict of finite floats or nulls: a job must never become unreadable
    because of what its training reported."""
    if not isinstance(stored, dict):
        return None
    losses: dict[str, float | None] = {}
    for name, value in stored.items():
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        losses[str(name)] = float(number) if number is not None and isfinite(number) else None
    return losses


def _readable(value: Any) -> Any:
    """A stored JSON value made writable as strict JSON: non-finite floats become null, lone
    surrogates (which a SQLite row written before they were refused may hold) become '?'."""
    if isinstance(value, str):
        # ASCII (most stored text) has no surrogate: no copy.
        return value if value.isascii() else value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float):
        return value if isfinite(value) else None
    if isinstance(value, dict):
        return {_readable(str(key)): _readable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_readable(item) for item in value]
    return value


def _readable_list(value: Any) -> list[Any]:
    """A stored JSON array (of strings: concepts, prompts) made readable, as a new list."""
    return [_readable(item) for item in value]


def _eta_seconds(job: "StoredJob", step: int, total: int) -> float | None:
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
    evaluator: str | None = Field(
        None,
        description="What judges this model's jobs after training (judge, clip, nudenet); "
        "null: jobs end with acceptance not_evaluated.",
    )


class ModelList(BaseModel):
    items: list[ModelView]
