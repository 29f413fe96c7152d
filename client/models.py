"""What the API returns, as typed models (pydantic only: the client never imports the server).

Every model ignores fields it does not know, so that a newer server (a new result field, a new
progress stage) never breaks an older client.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


TERMINAL_EVENT_KINDS = frozenset({"succeeded", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Progress(_Model):
    step: int
    total: int
    fraction: float
    losses: dict[str, float | None] | None = None
    eta_seconds: float | None = None
    # Set by servers whose jobs have stages after training (e.g. an evaluation stage).
    stage: str | None = None


class JobError(_Model):
    code: str
    message: str | None = None


class Job(_Model):
    id: str
    status: JobStatus
    model: str
    concepts: list[str]
    method: str
    train_method: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    sample_prompts: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    attempt: int = 0
    cancel_requested: bool = False
    progress: Progress | None = None
    error: JobError | None = None
    result: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def acceptance(self) -> str | None:
        """`passed`, `failed` or `not_evaluated` where the server evaluates jobs; else None."""
        result = self.result or {}
        verdict = result.get("acceptance")
        if verdict is None and isinstance(result.get("evaluation"), dict):
            verdict = result["evaluation"].get("acceptance")
        if isinstance(verdict, dict):
            verdict = verdict.get("verdict") or verdict.get("status")
        return str(verdict) if verdict is not None else None


class JobPage(_Model):
    items: list[Job]
    has_more: bool
    next_cursor: str | None = None


class Event(_Model):
    id: int
    kind: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime

    @property
    def is_final(self) -> bool:
        return self.kind in TERMINAL_EVENT_KINDS


class EventList(_Model):
    items: list[Event]
    finished: bool


class Artifact(_Model):
    name: str
    kind: str
    bytes: int
    sha256: str
    created_at: datetime


class ArtifactManifest(_Model):
    job_id: str
    artifacts: list[Artifact]


class RegisteredModel(_Model):
    name: str
    kind: str
    available: bool


class ApiKeyInfo(_Model):
    """A key as the admin API lists it (never the secret)."""

    prefix: str
    principal: str
    admin: bool = False
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class IssuedKey(_Model):
    """A key just created: `key` is the secret, shown this once."""

    key: str
    prefix: str
    principal: str
