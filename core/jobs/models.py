"""Tables of the job domain: jobs, their events, checkpoints, artifacts and idempotency records.

Postgres is the source of truth for job state (Celery's result backend is not used). Everything
here must also run on SQLite for the local profile, hence portable types only (`JSON`, string
UUIDs, `UTCDateTime`).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.artifacts.store import StoredArtifact
from core.db.base import Base
from core.db.types import UTCDateTime, utcnow
from core.jobs.status import JobStatus

_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in JobStatus)


def new_job_id() -> str:
    return str(uuid.uuid4())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        # keyset pagination of one principal's jobs, newest first
        Index("ix_jobs_principal_created_at_id", "principal", "created_at", "id"),
        # the reaper's scans: expired leases, stale queued jobs
        Index("ix_jobs_status_lease_expires_at", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    principal: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)

    model: Mapped[str] = mapped_column(String(200))
    concepts: Mapped[list[str]] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(String(16))
    train_method: Mapped[str] = mapped_column(String(16))
    # Only what the user set: the engine fills its own defaults, so a job keeps meaning what it
    # meant even if a default changes between submission and run.
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    sample_prompts: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The job's evaluation section (core.evaluation_request.EvaluationRequest, defaults filled
    # in); NULL for jobs created before the evaluation stage existed: they get the defaults.
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # `metadata` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)

    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    progress_step: Mapped[int | None] = mapped_column(Integer, default=None)
    progress_total: Mapped[int | None] = mapped_column(Integer, default=None)
    progress_losses: Mapped[dict[str, float] | None] = mapped_column(JSON, default=None)
    # Which stage the progress columns count: `training` (UNet updates) or `evaluation`
    # (images generated and scored). NULL: training (rows from before stages existed).
    progress_stage: Mapped[str | None] = mapped_column(String(16), default=None)

    error_code: Mapped[str | None] = mapped_column(String(100), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # 1st claim
    # The current attempt: when it was claimed and the step it started from (its checkpoint's,
    # 0 for a fresh start, NULL until the attempt says which). The ETA is the rate of this
    # attempt alone: the time a dead worker spent, and the queue wait, say nothing about it.
    attempt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempt_start_step: Mapped[int | None] = mapped_column(Integer, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class JobEvent(Base):
    """Append-only log of what happened to a job. `id` is the SSE event id (monotonic)."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_job_id_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def of(cls, job_id: str, stored: StoredArtifact) -> "Artifact":
        """The row that records a file the artifact store has just written for `job_id`."""
        return cls(
            job_id=job_id,
            name=stored.name,
            kind=str(stored.kind),
            bytes=stored.bytes,
            sha256=stored.sha256,
            location=stored.location,
        )


class IdempotencyState:
    IN_FLIGHT = "in_flight"
    DONE = "done"


class IdempotencyRecord(Base):
    """The first response to (principal, Idempotency-Key), replayed for identical retries.

    The row is inserted `in_flight` in its own committed transaction before the job is created,
    so that a concurrent duplicate hits the primary key and is told 409 instead of creating a
    second job.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (
        PrimaryKeyConstraint("principal", "key"),
        CheckConstraint("state IN ('in_flight', 'done')", name="state"),
        # the reaper's purge of records older than the idempotency TTL
        Index("ix_idempotency_records_created_at", "created_at"),
    )

    principal: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[str] = mapped_column(String(16), default=IdempotencyState.IN_FLIGHT)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
