"""The API-side use cases: create (idempotent), read, list, cancel, events, artifacts.

Every read takes the caller's principal and treats another principal's job exactly like a job
that does not exist, so that ids cannot be probed. Writers of state go through
`core.jobs.states.transition`; the worker-side use cases live in `core.jobs.lifecycle`.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.hyperparameters import Method
from core.jobs.errors import (
    ArtifactNotFoundError,
    FieldError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    JobFinishedError,
    JobNotFoundError,
)
from core.jobs.events import TERMINAL_EVENT_KINDS, EventKind, add_event
from core.jobs.models import (
    Artifact,
    IdempotencyRecord,
    IdempotencyState,
    Job,
    JobEvent,
    new_job_id,
)
from core.jobs.pagination import Cursor, InvalidCursorError
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


def request_fingerprint(request: JobCreate) -> str:
    """sha256 of the normalised body: key order, whitespace and spelt-out defaults don't count."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
        replay = _reserve_idempotency_key(
            factory,
            principal,
            idempotency_key,
            request_fingerprint(request),
            timedelta(seconds=settings.idempotency_in_flight_timeout_seconds),
        )
        if replay is not None:
            return replay

    job_id = new_job_id()
    try:
        with session_scope(factory) as session:
            body = _insert_job(session, settings, principal, request, job_id)
            if idempotency_key is not None:
                record = session.get(IdempotencyRecord, (principal, idempotency_key))
                assert record is not None, "reserved above in a committed transaction"
                record.state = IdempotencyState.DONE
                record.job_id = job_id
                record.response_status = int(CREATED_STATUS)
                record.response_body = body
    except BaseException:
        if idempotency_key is not None:
            _release_idempotency_key(factory, principal, idempotency_key)
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
        concepts=request.concepts,
        method=request.method.value,
        train_method=request.train_method.value,
        hyperparameters=request.hyperparameters_set(),
        seed=request.seed,
        sample_prompts=request.sample_prompts,
        metadata_=request.metadata,
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
    return JobView.of(job).model_dump(mode="json")


def _reserve_idempotency_key(
    factory: sessionmaker[Session],
    principal: str,
    key: str,
    fingerprint: str,
    abandoned_after: timedelta,
) -> CreatedJob | None:
    """Insert the in-flight record (None: this request owns the key) or answer from it."""
    _release_abandoned_key(factory, principal, key, abandoned_after)
    try:
        with session_scope(factory) as session:
            session.add(
                IdempotencyRecord(
                    principal=principal,
                    key=key,
                    request_hash=fingerprint,
                    state=IdempotencyState.IN_FLIGHT,
                    created_at=utcnow(),
                )
            )
        return None
    except IntegrityError:
        pass  # the key is taken: answer from the existing record

    with session_scope(factory) as session:
        record = session.get(IdempotencyRecord, (principal, key))
        if record is None:
            # The first request failed and released the key between our insert and this read.
            raise IdempotencyInFlightError("a request with this Idempotency-Key just failed")
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used with a different request body"
            )
        if record.state != IdempotencyState.DONE or record.response_body is None:
            raise IdempotencyInFlightError(
                "a request with this Idempotency-Key is still being processed"
            )
        return CreatedJob(
            status_code=record.response_status or int(CREATED_STATUS),
            body=dict(record.response_body),
            job_id=str(record.job_id),
            replayed=True,
        )


def _release_abandoned_key(
    factory: sessionmaker[Session], principal: str, key: str, abandoned_after: timedelta
) -> None:
    """Delete an in-flight record older than `abandoned_after` (its request died before it
    could finish or release it). One conditional DELETE, so two retries cannot both win."""
    with session_scope(factory) as session:
        session.execute(
            delete(IdempotencyRecord)
            .where(
                IdempotencyRecord.principal == principal,
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == IdempotencyState.IN_FLIGHT,
                IdempotencyRecord.created_at < utcnow() - abandoned_after,
            )
            .execution_options(synchronize_session=False)
        )


def _release_idempotency_key(factory: sessionmaker[Session], principal: str, key: str) -> None:
    """Forget an in-flight key whose request failed, so that the client may retry with it."""
    with session_scope(factory) as session:
        record = session.get(IdempotencyRecord, (principal, key))
        if record is not None and record.state == IdempotencyState.IN_FLIGHT:
            session.delete(record)


def _is_job_id(value: str) -> bool:
    """Job ids are UUIDs; anything else cannot exist and never reaches SQL (Postgres refuses
    some strings outright, e.g. with NUL bytes, which would surface as a 500)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def get_job(session: Session, principal: str, job_id: str) -> Job:
    if not _is_job_id(job_id):
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
    items: list[Job]
    has_more: bool
    next_cursor: str | None


def list_jobs(
    session: Session, principal: str, filters: JobFilter, *, limit: int, after: str | None
) -> Page:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Job).where(Job.principal == principal)
    if filters.statuses:
        query = query.where(Job.status.in_([status.value for status in filters.statuses]))
    if filters.method is not None:
        query = query.where(Job.method == filters.method.value)
    if filters.created_after is not None:
        query = query.where(Job.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    if after is not None:
        try:
            cursor = Cursor.decode(after)
        except InvalidCursorError as error:
            raise InvalidRequestError(
                [FieldError(loc=("query", "after"), msg=str(error), type="invalid_cursor")]
            ) from error
        query = query.where(
            or_(
                Job.created_at < cursor.created_at,
                and_(Job.created_at == cursor.created_at, Job.id < cursor.id),
            )
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
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
    if not _is_job_id(job_id):
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
