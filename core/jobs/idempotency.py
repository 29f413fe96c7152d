"""Idempotency-Key records: reserve a key, finish it with the response, release it on failure.

The reservation is committed in its own transaction *before* the job is created, so that a
concurrent duplicate hits the primary key (principal, key) and is told 409 instead of creating a
second job; the record is finished in the same transaction that creates the job, so a key is
"done" exactly when its job exists.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs.errors import IdempotencyInFlightError, IdempotencyKeyReusedError
from core.jobs.models import IdempotencyRecord, IdempotencyState


@dataclass(frozen=True)
class Replay:
    """The first response to a key, to answer again."""

    status_code: int
    body: dict[str, Any]
    job_id: str


def fingerprint(normalised_body: dict[str, Any]) -> str:
    """sha256 of the normalised body: key order, whitespace and spelt-out defaults don't count."""
    canonical = json.dumps(normalised_body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def reserve(
    factory: sessionmaker[Session],
    principal: str,
    key: str,
    request_hash: str,
    abandoned_after: timedelta,
) -> Replay | None:
    """Reserve the key (None: this request owns it now) or answer from the existing record:
    a Replay for the same body, IdempotencyKeyReusedError for another body,
    IdempotencyInFlightError while the first request is still running."""
    _release_abandoned(factory, principal, key, abandoned_after)
    try:
        with session_scope(factory) as session:
            session.add(
                IdempotencyRecord(
                    principal=principal,
                    key=key,
                    request_hash=request_hash,
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
        if record.request_hash != request_hash:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used with a different request body"
            )
        if record.state != IdempotencyState.DONE or record.response_body is None:
            raise IdempotencyInFlightError(
                "a request with this Idempotency-Key is still being processed"
            )
        return Replay(
            status_code=int(record.response_status or 0),
            body=dict(record.response_body),
            job_id=str(record.job_id),
        )


def finish(
    session: Session,
    principal: str,
    key: str,
    *,
    job_id: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Record the response, in the caller's transaction (the one that creates the job)."""
    record = session.get(IdempotencyRecord, (principal, key))
    assert record is not None, "reserved in a committed transaction before"
    record.state = IdempotencyState.DONE
    record.job_id = job_id
    record.response_status = status_code
    record.response_body = body


def release(factory: sessionmaker[Session], principal: str, key: str) -> None:
    """Forget an in-flight key whose request failed, so that the client may retry with it."""
    with session_scope(factory) as session:
        record = session.get(IdempotencyRecord, (principal, key))
        if record is not None and record.state == IdempotencyState.IN_FLIGHT:
            session.delete(record)


def _release_abandoned(
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


def purge_expired(session: Session, ttl: timedelta, *, now: datetime | None = None) -> int:
    """Forget every record created more than `ttl` ago, done or in flight; returns how many.

    Run by the reaper's sweep, in the caller's transaction, so the table holds about one TTL of
    keys. A done key past its TTL is a key the client may use again (for a new job); an in-flight
    one that old belongs to a request that died (a retry with the key releases it sooner, see
    `_release_abandoned`). `Settings` keeps the TTL longer than the in-flight timeout, so a live
    request never loses its reservation.
    """
    cutoff = (now or utcnow()) - ttl
    result = session.execute(
        delete(IdempotencyRecord)
        .where(IdempotencyRecord.created_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount
