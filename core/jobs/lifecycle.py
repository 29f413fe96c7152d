"""Worker-side use cases of the job lifecycle: claim, heartbeat, progress, checkpoints, outcome,
and the reaper's sweeps.

Each status change is one conditional UPDATE through `core.jobs.states.transition`; the ones a
worker makes are further guarded by `lease_owner = <this attempt>`, so a worker whose lease was
taken over (it stalled, the reaper requeued its job, another worker claimed it) can no longer
change anything. Functions take the caller's session and never commit: the caller decides the
transaction (the worker commits each call on its own; `complete` writes the outcome and the
artifact rows in one).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import isfinite
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, select, update
from sqlalchemy.orm import Session

from core.artifacts import StoredArtifact
from core.db.types import UTCDateTime, utcnow
from core.jobs import idempotency
from core.jobs.events import EventKind, add_event
from core.jobs.models import Artifact, Checkpoint, Job
from core.jobs.states import JobStatus, transition

# States in which a worker holds a lease and is running the engine.
LEASED_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})

WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs of a job it has just claimed (a snapshot, detached from any session)."""

    id: str
    attempt: int
    model: str
    concepts: list[str]
    method: str
    train_method: str
    hyperparameters: dict[str, Any]
    seed: int
    sample_prompts: list[str]
    evaluation: dict[str, Any] | None = None


@dataclass(frozen=True)
class LeaseStatus:
    held: bool  # False: the lease is gone (taken over, or the job left the leased states)
    cancel_requested: bool


@dataclass(frozen=True)
class ProgressUpdate:
    step: int
    total: int
    losses: dict[str, float]
    adversarial_concepts: dict[str, str] = field(default_factory=dict)
    stage: str = "training"  # or "evaluation": what step and total count


@dataclass
class ReaperOutcome:
    requeued: list[str] = field(default_factory=list)  # to re-enqueue after the commit
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    stale_requeued: list[str] = field(default_factory=list)  # queued, message presumed lost
    idempotency_records_purged: int = 0

    @property
    def to_enqueue(self) -> list[str]:
        return [*self.requeued, *self.stale_requeued]


def claim(
    session: Session, job_id: str, owner: str, lease_seconds: float, *, now: datetime | None = None
) -> ClaimedJob | None:
    """Take the job for `owner`: queued, or running with an expired lease, and attempts left.

    None means another delivery owns it, or it is cancelled or finished: do no work.
    """
    now = now or utcnow()
    won = transition(
        session,
        job_id,
        JobStatus.RUNNING,
        from_={JobStatus.QUEUED, JobStatus.RUNNING},
        where=(
            or_(Job.status == JobStatus.QUEUED.value, Job.lease_expires_at < now),
            # a job whose worker keeps vanishing is failed by the reaper, not retried forever
            Job.attempt < Job.max_attempts,
            # never start work somebody asked to stop
            Job.cancel_requested.is_(False),
        ),
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        attempt=Job.attempt + 1,
        # `started_at` is the job's first start; the attempt's own clock and starting step (set
        # by `record_resumed`, or 0 at its first progress) are what the ETA is measured from.
        started_at=func.coalesce(Job.started_at, literal(now, UTCDateTime())),
        attempt_started_at=now,
        attempt_start_step=None,
    )
    if not won:
        return None
    job = session.execute(select(Job).where(Job.id == job_id)).scalar_one()
    add_event(session, job_id, EventKind.CLAIMED, {"worker": owner, "attempt": job.attempt})
    return ClaimedJob(
        id=job.id,
        attempt=job.attempt,
        model=job.model,
        concepts=list(job.concepts),
        method=job.method,
        train_method=job.train_method,
        hyperparameters=dict(job.hyperparameters or {}),
        seed=job.seed,
        sample_prompts=list(job.sample_prompts or []),
        evaluation=dict(job.evaluation) if job.evaluation is not None else None,
    )


def heartbeat(
    session: Session, job_id: str, owner: str, lease_seconds: float, *, now: datetime | None = None
) -> LeaseStatus:
    """Extend the lease while `owner` still holds it; report whether a cancel was requested.

    `updated_at` is left alone: it dates the last change a client can see (progress, status),
    which the API's ETag and ETA are computed from; a lease renewal is not one.
    """
    now = now or utcnow()
    extended = _update_leased(
        session,
        job_id,
        owner,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        updated_at=Job.updated_at,
    )
    if not extended:
        return LeaseStatus(held=False, cancel_requested=False)
    return lease_status(session, job_id, owner)


def lease_status(session: Session, job_id: str, owner: str) -> LeaseStatus:
    """Read-only: does `owner` still hold the job's lease, and was a cancel requested?"""
    row = session.execute(
        select(Job.cancel_requested).where(*_lease_clauses(job_id, owner))
    ).first()
    if row is None:
        return LeaseStatus(held=False, cancel_requested=False)
    return LeaseStatus(held=True, cancel_requested=bool(row.cancel_requested))


def record_progress(session: Session, job_id: str, owner: str, progress: ProgressUpdate) -> bool:
    """Write the progress columns and a `progress` event, if `owner` still holds the lease."""
    losses = finite_losses(progress.losses)
    written = _update_leased(
        session,
        job_id,
        owner,
        progress_step=progress.step,
        progress_total=progress.total,
        progress_losses=losses,
        progress_stage=progress.stage,
        # The engine reports a resume before its first step; progress with no resume recorded
        # means this attempt started from scratch.
        attempt_start_step=func.coalesce(Job.attempt_start_step, 0),
        updated_at=utcnow(),
    )
    if written:
        add_event(
            session,
            job_id,
            EventKind.PROGRESS,
            {
                "stage": progress.stage,
                "step": progress.step,
                "total": progress.total,
                "losses": losses,
                "adversarial_concepts": dict(progress.adversarial_concepts),
            },
        )
    return written


def record_resumed(session: Session, job_id: str, owner: str, step: int) -> bool:
    """A `resumed` event: this attempt continues from the checkpoint at `step`, which is also
    where its rate (the ETA) counts from. Not a change a client sees by itself: `updated_at`
    stays."""
    if not _update_leased(
        session, job_id, owner, attempt_start_step=step, updated_at=Job.updated_at
    ):
        return False
    add_event(session, job_id, EventKind.RESUMED, {"step": step})
    return True


def record_stage(
    session: Session,
    job_id: str,
    owner: str,
    stage: str,
    step: int,
    total: int,
    *,
    resumed: bool = False,
    now: datetime | None = None,
) -> bool:
    """The job enters `stage` (at `step` of `total`, > 0 when resumed): the progress columns
    count that stage from now on, and the ETA is measured from this moment and step, because
    the rate of one stage says nothing about the next."""
    now = now or utcnow()
    if not _update_leased(
        session,
        job_id,
        owner,
        progress_stage=stage,
        progress_step=step,
        progress_total=total,
        progress_losses=None,
        attempt_started_at=now,
        attempt_start_step=step,
        updated_at=now,
    ):
        return False
    add_event(
        session,
        job_id,
        EventKind.STAGE,
        {"stage": stage, "step": step, "total": total, "resumed": resumed},
    )
    return True


def record_event(
    session: Session, job_id: str, owner: str, kind: EventKind, data: dict[str, Any]
) -> bool:
    """An event from the lease owner (e.g. the evaluation's verdict)."""
    if not _holds_lease(session, job_id, owner):
        return False
    add_event(session, job_id, kind, data)
    return True


def record_checkpoint(session: Session, job_id: str, owner: str, step: int, location: str) -> bool:
    if not _holds_lease(session, job_id, owner):
        return False
    session.add(Checkpoint(job_id=job_id, step=step, location=location))
    add_event(session, job_id, EventKind.CHECKPOINT, {"step": step})
    return True


def complete(
    session: Session,
    job_id: str,
    owner: str,
    artifacts: list[StoredArtifact],
    result: dict[str, Any],
) -> bool:
    """running|cancelling → succeeded with its artifact rows, for the lease owner only.

    A job whose cancel arrived after its last step still succeeds: the work is done and whole.
    The caller commits; if this returns False it must delete what it published.
    """
    won = transition(
        session,
        job_id,
        JobStatus.SUCCEEDED,
        from_=LEASED_STATUSES,
        where=(Job.lease_owner == owner,),
        result=result,
        lease_owner=None,
        lease_expires_at=None,
    )
    if not won:
        return False
    session.add_all(Artifact.of(job_id, artifact) for artifact in artifacts)
    add_event(
        session,
        job_id,
        EventKind.SUCCEEDED,
        {"artifacts": [artifact.name for artifact in artifacts]},
    )
    return True


def fail(session: Session, job_id: str, owner: str, code: str, message: str) -> bool:
    won = transition(
        session,
        job_id,
        JobStatus.FAILED,
        from_=LEASED_STATUSES,
        where=(Job.lease_owner == owner,),
        error_code=code,
        error_message=message,
        lease_owner=None,
        lease_expires_at=None,
    )
    if won:
        add_event(session, job_id, EventKind.FAILED, {"code": code, "message": message})
    return won


def mark_cancelled(session: Session, job_id: str, owner: str, *, step: int | None = None) -> bool:
    """cancelling → cancelled once the worker has stopped (at step `step`)."""
    won = transition(
        session,
        job_id,
        JobStatus.CANCELLED,
        from_={JobStatus.CANCELLING},
        where=(Job.lease_owner == owner,),
        lease_owner=None,
        lease_expires_at=None,
    )
    if won:
        add_event(session, job_id, EventKind.CANCELLED, {"step": step})
    return won


def reap(
    session: Session,
    *,
    stale_queued_seconds: float,
    idempotency_ttl_seconds: float | None = None,
    now: datetime | None = None,
) -> ReaperOutcome:
    """One sweep. Expired leases: running → queued (attempts left) or failed (`worker_lost`);
    cancelling → cancelled (its worker is gone, nothing to stop). Queued jobs not enqueued for
    `stale_queued_seconds` are marked re-enqueued now. Idempotency records older than
    `idempotency_ttl_seconds` are deleted (None keeps them). The caller commits, then enqueues
    `outcome.to_enqueue` (a crash in between is caught by the stale-queued rule next time).
    """
    now = now or utcnow()
    outcome = ReaperOutcome()
    expired = Job.lease_expires_at < now
    rows = session.execute(
        select(Job.id, Job.status, Job.attempt, Job.max_attempts, Job.lease_owner).where(
            Job.status.in_([status.value for status in LEASED_STATUSES]), expired
        )
    ).all()
    for job_id, status, attempt, max_attempts, lost_owner in rows:
        lost = {"reason": "lease_expired", "worker": lost_owner, "attempt": attempt}
        same_lease = (expired, Job.lease_owner == lost_owner)  # nobody renewed or re-claimed it
        if status == JobStatus.CANCELLING.value:
            if transition(
                session,
                job_id,
                JobStatus.CANCELLED,
                from_={JobStatus.CANCELLING},
                where=same_lease,
                lease_owner=None,
                lease_expires_at=None,
            ):
                add_event(session, job_id, EventKind.CANCELLED, lost)
                outcome.cancelled.append(job_id)
        elif attempt < max_attempts:
            if transition(
                session,
                job_id,
                JobStatus.QUEUED,
                from_={JobStatus.RUNNING},
                where=same_lease,
                lease_owner=None,
                lease_expires_at=None,
                last_enqueued_at=now,
            ):
                add_event(session, job_id, EventKind.REQUEUED, lost)
                outcome.requeued.append(job_id)
        else:
            message = f"the worker stopped answering on attempt {attempt} of {max_attempts}"
            if transition(
                session,
                job_id,
                JobStatus.FAILED,
                from_={JobStatus.RUNNING},
                where=same_lease,
                error_code=WORKER_LOST,
                error_message=message,
                lease_owner=None,
                lease_expires_at=None,
            ):
                add_event(session, job_id, EventKind.FAILED, {"code": WORKER_LOST, **lost})
                outcome.failed.append(job_id)

    outcome.stale_requeued = _mark_stale_queued(session, now, stale_queued_seconds)
    if idempotency_ttl_seconds is not None:
        outcome.idempotency_records_purged = idempotency.purge_expired(
            session, timedelta(seconds=idempotency_ttl_seconds), now=now
        )
    return outcome


def _mark_stale_queued(session: Session, now: datetime, older_than_seconds: float) -> list[str]:
    cutoff = now - timedelta(seconds=older_than_seconds)
    stale = or_(
        Job.last_enqueued_at < cutoff,
        Job.last_enqueued_at.is_(None) & (Job.created_at < cutoff),
    )
    candidates = session.execute(
        select(Job.id).where(Job.status == JobStatus.QUEUED.value, stale)
    ).scalars()
    marked: list[str] = []
    for job_id in list(candidates):
        # Conditional too: of two reapers sweeping at once, only one re-enqueues.
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value, stale)
            .values(last_enqueued_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(changed, "rowcount", 0) == 1:
            add_event(session, job_id, EventKind.ENQUEUED, {"reason": "stale_queued"})
            marked.append(job_id)
    return marked


def _lease_clauses(job_id: str, owner: str) -> tuple[ColumnElement[bool], ...]:
    return (
        Job.id == job_id,
        Job.lease_owner == owner,
        Job.status.in_([status.value for status in LEASED_STATUSES]),
    )


def _update_leased(session: Session, job_id: str, owner: str, **values: Any) -> bool:
    result = session.execute(
        update(Job)
        .where(*_lease_clauses(job_id, owner))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def _holds_lease(session: Session, job_id: str, owner: str) -> bool:
    found = session.execute(select(Job.id).where(*_lease_clauses(job_id, owner))).first()
    return found is not None


def finite_losses(losses: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN/inf (Postgres rejects them): a diverged loss is recorded as null."""
    return {name: (float(value) if isfinite(value) else None) for name, value in losses.items()}
