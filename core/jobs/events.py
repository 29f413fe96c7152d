"""The job event log: one helper every writer (API, worker, reaper) uses to append to it."""

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from core.jobs.models import JobEvent


class EventKind(StrEnum):
    CREATED = "created"
    ENQUEUED = "enqueued"
    CLAIMED = "claimed"
    RESUMED = "resumed"  # data.step
    PROGRESS = "progress"  # data.stage, step, total, losses, adversarial_concepts
    STAGE = "stage"  # data.stage (training done, evaluation starts), step, total, resumed
    EVALUATED = "evaluated"  # data.acceptance, rates, failed checks: the verdict
    CHECKPOINT = "checkpoint"  # data.step
    CANCEL_REQUESTED = "cancel_requested"
    REQUEUED = "requeued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A job's event stream ends after one of these.
TERMINAL_EVENT_KINDS: frozenset[str] = frozenset(
    {EventKind.SUCCEEDED, EventKind.FAILED, EventKind.CANCELLED}
)


def add_event(
    session: Session, job_id: str, kind: EventKind | str, data: dict[str, Any] | None = None
) -> JobEvent:
    """Append an event in the caller's transaction; flushed so that `event.id` is known.

    Write it in the same transaction as the state change it describes, so that the log and the
    job row never disagree.
    """
    event = JobEvent(job_id=job_id, kind=str(kind), data=dict(data or {}))
    session.add(event)
    session.flush()
    return event
