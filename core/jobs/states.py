"""The job state machine: which transitions exist and the one primitive that performs them.

Every change of a job's status is ONE conditional UPDATE
`... WHERE id = :id AND status IN (:allowed_from) [AND extra conditions]`. The API (cancel), the
worker (claim, complete, fail) and the reaper (requeue) race on the same rows; the database
decides who wins and the row count tells each side whether it did. No read-then-write.
"""

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, update
from sqlalchemy.orm import Session

from core.db.types import utcnow
from core.jobs.models import Job
from core.jobs.status import TERMINAL_STATUSES, JobStatus

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "IllegalTransitionError",
    "JobStatus",
    "can_transition",
    "transition",
]

# from -> the states it may move to (service.md "Job lifecycle")
ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {
            JobStatus.RUNNING,  # claimed by a worker
            JobStatus.CANCELLED,  # cancelled before any worker took it
            JobStatus.FAILED,  # could not be started at all (e.g. model gone)
        }
    ),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.RUNNING,  # re-claimed by another worker after the lease expired
            JobStatus.QUEUED,  # lease expired, attempts left: the reaper requeues it
            JobStatus.CANCELLING,  # cancel requested; the worker stops at a step boundary
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
        }
    ),
    JobStatus.CANCELLING: frozenset(
        {
            JobStatus.CANCELLED,  # the worker stopped (or vanished: the reaper finishes it)
            JobStatus.SUCCEEDED,  # the last step finished before the worker saw the flag
            JobStatus.FAILED,
        }
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """A caller asked for a transition the lifecycle does not have: a programming error."""


def can_transition(from_: JobStatus, to: JobStatus) -> bool:
    return to in ALLOWED_TRANSITIONS[from_]


def transition(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    from_: Iterable[JobStatus],
    where: Iterable[ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Move job `job_id` to `to` if it is in one of `from_` and every `where` clause holds.

    `values` are further columns to set in the same UPDATE (attribute names of `Job`, values or
    SQL expressions such as `Job.attempt + 1`). `updated_at` is always set, and `finished_at` when
    `to` is terminal unless given. Returns True when this call won (exactly one row changed).
    The caller owns the transaction; nothing is committed here.
    """
    sources = frozenset(from_)
    if not sources:
        raise IllegalTransitionError("from_ must name at least one state")
    illegal = sorted(source.value for source in sources if not can_transition(source, to))
    if illegal:
        raise IllegalTransitionError(f"no transition from {illegal} to {to.value!r}")

    now = utcnow()
    assignments: dict[str, Any] = {"status": to.value, "updated_at": now, **values}
    if to in TERMINAL_STATUSES:
        assignments.setdefault("finished_at", now)

    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([source.value for source in sources]), *where)
        .values(**assignments)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount == 1
