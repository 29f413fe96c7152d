"""The reaper's sweep forgets Idempotency-Key records older than `idempotency_ttl_seconds`:
real Postgres, the real sweep (`reap_once`), and the API over real HTTP to see what a client
sees before and after."""

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs.models import IdempotencyRecord, IdempotencyState, Job
from core.settings import Settings
from worker.reaper import reap_once

BODY = {"model": "demo", "concepts": ["ring"]}


def _post(client: httpx.Client, key: str) -> httpx.Response:
    response = client.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return response


def _age(factory: sessionmaker[Session], key: str, by: timedelta) -> None:
    with session_scope(factory) as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == key)
            .values(created_at=utcnow() - by)
        )


def _keys(factory: sessionmaker[Session]) -> set[str]:
    with session_scope(factory) as session:
        return set(session.execute(select(IdempotencyRecord.key)).scalars())


def test_a_key_older_than_the_ttl_is_forgotten_and_a_younger_one_still_replays(
    alice: httpx.Client, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    expired_job = _post(alice, "expired").json()["id"]
    kept_job = _post(alice, "kept").json()["id"]
    _age(session_factory, "expired", settings.idempotency_ttl_seconds * 1.01 * timedelta(seconds=1))
    _age(session_factory, "kept", settings.idempotency_ttl_seconds * 0.99 * timedelta(seconds=1))

    outcome = reap_once(settings)

    assert outcome.idempotency_records_purged == 1
    assert _keys(session_factory) == {"kept"}
    replay = _post(alice, "kept")
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["id"] == kept_job
    reused = _post(alice, "expired")  # a key past its TTL may be used again: a new job
    assert reused.headers.get("idempotent-replayed") is None
    assert reused.json()["id"] != expired_job
    with session_scope(session_factory) as session:
        assert session.get(Job, expired_job) is not None  # the job itself is kept


def test_an_in_flight_record_of_a_dead_request_is_purged_too(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        session.add(
            IdempotencyRecord(
                principal="alice",
                key="died-mid-request",
                request_hash="0" * 64,
                state=IdempotencyState.IN_FLIGHT,
                created_at=utcnow() - timedelta(seconds=settings.idempotency_ttl_seconds + 60),
            )
        )

    assert reap_once(settings).idempotency_records_purged == 1
    assert _keys(session_factory) == set()


def test_the_ttl_must_outlive_the_in_flight_timeout() -> None:
    with pytest.raises(ValidationError):
        Settings(idempotency_ttl_seconds=30, idempotency_in_flight_timeout_seconds=60)
