"""The API-side use cases: create (idempotent), read, list, cancel, events, artifacts.

Every read takes the caller's principal and treats another principal's job exactly like a job
that does not exist, so that ids cannot be probed. Writers of state go through
`core.jobs.states.transition`; the worker-side use cases live in `core.jobs.lifecycle`.
"""

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.hyperparameters import Method
from core.jobs import idempotency
from core.jobs.errors import (
    ArtifactNotFoundError,
    FieldError,
    InvalidRequestError,
    JobFinishedError,
    JobNotFoundError,
)
from core.jobs.events import TERMINAL_EVENT_KINDS, EventKind, add_event
from core.jobs.models import (
    Artifact,
    Job,
    JobEvent,
    new_job_id,
)
from core.jobs.pagination import Cursor, InvalidCursorError
from core.jobs.reads import JOB_ROW_COLUMNS, JobRow, is_job_id
from core.jobs.schemas import JobCreate, JobView
from core.jobs.states import JobStatus, transition
from core.jobs.validation import job_request_errors
from core.settings import Settings

logger = logging.getLogger(__name__)

# The status a successful create answers with; stored with the idempotency record so that a
# replay answers exactly as the first request did.
CREATED_STATUS = HTTPStatus.ACCEPTED


@dataclass(frozen=True)
class CreatedJob:
    status_code: int
    body: dict[str, Any]
    job_id: str
    replayed: bool


def create_job(
    factory: sessionmaker[Session],
    settings: Settings,
    principal: str,
    request: JobCreate,
    *,
    idempotency_key: str | None,
    enqueue: Callable[[str], None],
) -> CreatedJob:
    """Validate, record (with the idempotency key), commit, then enqueue.

    Uses its own transactions rather than the request's session: the idempotency record must be
    committed before the job is (so a concurrent duplicate sees it), and the message must only be
    sent once the job row is committed (so a worker never receives an id it cannot read).
    """
    errors = job_request_errors(settings, request)
    if errors:
        raise InvalidRequestError(errors)

    if idempotency_key is not None:
        replay = idempotency.reserve(
            factory,
            principal,
            idempotency_key,
            idempotency.fingerprint(request.model_dump(mode="json")),
            timedelta(seconds=settings.idempotency_in_flight_timeout_seconds),
        )
        if replay is not None:
            return CreatedJob(replay.status_code, replay.body, replay.job_id, replayed=True)

    job_id = new_job_id()
    try:
        with session_scope(factory) as session:
            body = _insert_job(session, settings, principal, request, job_id)
            if idempotency_key is not None:
                idempotency.finish(
                    session,
                    principal,
                    idempotency_key,
                    job_id=job_id,
                    status_code=int(CREATED_STATUS),
                    body=body,
                )
    except BaseException:
        if idempotency_key is not None:
            idempotency.release(factory, principal, idempotency_key)
        raise

    try:
        enqueue(job_id)
    except Exception:
        # The job is committed and queued: the reaper re-enqueues queued jobs whose message
        # was lost, so the client still gets its 202 rather than a job it cannot see.
        logger.exception("enqueue failed for job %s; the reaper will retry", job_id)
    return CreatedJob(int(CREATED_STATUS), body, job_id, replayed=False)


def _insert_job(
    session: Session, settings: Settings, principal: str, request: JobCreate, job_id: str
) -> dict[str, Any]:
    now = utcnow()
    job = Job(
        id=job_id,
        principal=principal,
        status=JobStatus.QUEUED.value,
        model=request.model,
        concepts=request.clean_concepts(),
        method=request.method.value,
        train_method=request.train_method.value,
        hyperparameters=request.hyperparameters_set(),
        seed=request.seed,
        sample_prompts=request.clean_sample_prompts(),
        metadata_=request.metadata,
        evaluation=request.evaluation.model_dump(mode="json"),
        attempt=0,
        max_attempts=settings.max_attempts,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
        # Written before the send (which happens after commit) so that the log reads
        # created → enqueued → claimed; if the send fails the reaper's stale-queued scan retries.
        last_enqueued_at=now,
    )
    session.add(job)
    session.flush()
    add_event(session, job_id, EventKind.CREATED, {"model": job.model, "concepts": job.concepts})
    add_event(session, job_id, EventKind.ENQUEUED, {"queue": settings.queue_name})
    body = JobView.of(job).model_dump(mode="json")
    # Render the answer before the commit, as strictly as the response will: a body that cannot
    # be written as UTF-8 JSON must roll the job back, never leave a committed job and a 500.
    json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return body


def get_job(session: Session, principal: str, job_id: str) -> Job:
    if not is_job_id(job_id):
        raise JobNotFoundError(job_id)
    job = session.scalars(
        select(Job).where(Job.id == job_id, Job.principal == principal)
    ).one_or_none()
    if job is None:
        raise JobNotFoundError(job_id)
    return job


@dataclass(frozen=True)
class JobFilter:
    statuses: Sequence[JobStatus] = ()
    method: Method | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Page:
    # The columns a JobView shows, JSON as text: `reads.decode` makes them a JobRecord, which
    # JobView.of reads as it reads a Job; `rendering.JobRenderer` renders them, cached.
    items: list[JobRow]
    has_more: bool
    next_cursor: str | None


_jobs = Job.__table__
_PAGE = select(*JOB_ROW_COLUMNS).where(_jobs.c.principal == bindparam("principal"))
_AFTER_CURSOR = or_(
    _jobs.c.created_at < bindparam("cursor_created_at"),
    and_(
        _jobs.c.created_at == bindparam("cursor_created_at"),
        _jobs.c.id < bindparam("cursor_id"),
    ),
)


def _newest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(_jobs.c.created_at.desc(), _jobs.c.id.desc()).limit(bindparam("limit"))


# What polling clients ask for (a first page, then the next ones, without filters), built once:
# SQLAlchemy remembers a statement's cache key on the statement object, so these are neither
# rebuilt nor walked again per request (26 labelled columns each).
_FIRST_PAGE = _newest_first(_PAGE)
_NEXT_PAGE = _newest_first(_PAGE.where(_AFTER_CURSOR))


def list_jobs(
    db: Session | Connection,
    principal: str,
    filters: JobFilter,
    *,
    limit: int,
    after: str | None,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id). A Core select of the shown columns
    (no ORM entities: a page is read, never changed)."""
    params: dict[str, Any] = {"principal": principal, "limit": limit + 1}
    if after is not None:
        try:
            cursor = Cursor.decode(after)
        except InvalidCursorError as error:
            raise InvalidRequestError(
                [FieldError(loc=("query", "after"), msg=str(error), type="invalid_cursor")]
            ) from error
        params.update(cursor_created_at=cursor.created_at, cursor_id=cursor.id)
    unfiltered = not filters.statuses and filters.method is None
    if unfiltered and filters.created_after is None and filters.created_before is None:
        query = _FIRST_PAGE if after is None else _NEXT_PAGE
    else:
        query = _PAGE if after is None else _PAGE.where(_AFTER_CURSOR)
        if filters.statuses:
            query = query.where(_jobs.c.status.in_([status.value for status in filters.statuses]))
        if filters.method is not None:
            query = query.where(_jobs.c.method == filters.method.value)
        if filters.created_after is not None:
            query = query.where(_jobs.c.created_at >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(_jobs.c.created_at < filters.created_before)
        query = _newest_first(query)
    rows = list(db.execute(query, params).all())
    has_more = len(rows) > limit
    items = rows[:limit]
    next_cursor = Cursor(items[-1].created_at, items[-1].id).encode() if has_more else None
    return Page(items=items, has_more=has_more, next_cursor=next_cursor)


def cancel_job(session: Session, principal: str, job_id: str) -> Job:
    """Idempotent cancel: queued → cancelled at once; running → cancelling (the worker stops at
    its next step boundary and marks the job cancelled); already cancelling/cancelled → as is;
    succeeded/failed → JobFinishedError."""
    job = get_job(session, principal, job_id)
    # Each transition is conditional: if the worker moved the job between our read and our
    # update, the update loses and we look again. Two rounds cover queued → running → done.
    for _ in range(3):
        status = JobStatus(job.status)
        if status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            return job
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            raise JobFinishedError(f"job {job_id} already {status.value}")
        if status == JobStatus.QUEUED and transition(
            session,
            job_id,
            JobStatus.CANCELLED,
            from_={JobStatus.QUEUED},
            cancel_requested=True,
        ):
            add_event(session, job_id, EventKind.CANCELLED, {"while": "queued"})
        elif status == JobStatus.RUNNING and transition(
            session,
            job_id,
            JobStatus.CANCELLING,
            from_={JobStatus.RUNNING},
            cancel_requested=True,
        ):
            add_event(session, job_id, EventKind.CANCEL_REQUESTED, {})
        session.refresh(job)
    return job


def _owned_job_id(session: Session, principal: str, job_id: str) -> str:
    if not is_job_id(job_id):
        raise JobNotFoundError(job_id)
    owned = session.scalar(select(Job.id).where(Job.id == job_id, Job.principal == principal))
    if owned is None:
        raise JobNotFoundError(job_id)
    return owned


def events_since(
    session: Session, principal: str, job_id: str, *, after_id: int, limit: int
) -> list[JobEvent]:
    """The job's events with id > after_id, oldest first."""
    _owned_job_id(session, principal, job_id)
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
            .limit(limit)
        )
    )


def is_final_event(event: JobEvent) -> bool:
    return event.kind in TERMINAL_EVENT_KINDS


def job_artifacts(session: Session, principal: str, job_id: str) -> list[Artifact]:
    _owned_job_id(session, principal, job_id)
    return list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name))
    )


def job_artifact(session: Session, principal: str, job_id: str, name: str) -> Artifact:
    """Looked up by name in the table: the name is never joined into a filesystem path."""
    _owned_job_id(session, principal, job_id)
    artifact = session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    ).one_or_none()
    if artifact is None:
        raise ArtifactNotFoundError(job_id, name)
    return artifact


def count_jobs_by_status(session: Session) -> dict[str, int]:
    """For the metrics gauge: every status, zero included."""
    counts = dict.fromkeys((status.value for status in JobStatus), 0)
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status] = count
    return counts
