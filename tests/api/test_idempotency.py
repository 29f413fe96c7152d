"""Idempotency-Key: a replay returns the first response, another body is a 422, a duplicate
while the first is in flight is a 409, and a burst of duplicates creates one job."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db.types import utcnow
from core.jobs.models import IdempotencyRecord, Job
from core.settings import Settings

BODY = {"model": "demo", "concepts": ["ring"], "seed": 3}


def _jobs(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Job)) or 0


def test_a_replay_returns_the_first_response_and_creates_nothing(
    alice: httpx.Client, db_session: Session
) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = alice.post("/v1/jobs", json=BODY, headers=headers)
    # the same body spelt differently (key order, explicit default) is the same request
    replay = alice.post("/v1/jobs", json={"seed": 3, "method": "ap", **BODY}, headers=headers)

    assert first.status_code == replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert _jobs(db_session) == 1


def test_the_same_key_with_another_body_is_a_422(alice: httpx.Client, db_session: Session) -> None:
    headers = {"Idempotency-Key": "order-2"}
    assert alice.post("/v1/jobs", json=BODY, headers=headers).status_code == 202

    other = alice.post("/v1/jobs", json={**BODY, "concepts": ["star"]}, headers=headers)

    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert _jobs(db_session) == 1


def test_keys_are_per_principal(alice: httpx.Client, bob: httpx.Client) -> None:
    headers = {"Idempotency-Key": "shared-name"}
    mine = alice.post("/v1/jobs", json=BODY, headers=headers)
    theirs = bob.post("/v1/jobs", json={**BODY, "concepts": ["star"]}, headers=headers)

    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_duplicate_while_the_first_is_in_flight_is_a_409(
    alice: httpx.Client, db_session: Session
) -> None:
    # The first request has reserved its key (committed) and not finished yet.
    first = alice.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "probe"})
    in_flight = IdempotencyRecord(
        principal="alice",
        key="order-3",
        request_hash=_fingerprint_of(db_session, "probe"),
        state="in_flight",
        created_at=utcnow(),
    )
    db_session.add(in_flight)
    db_session.commit()
    assert first.status_code == 202

    duplicate = alice.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "order-3"})

    assert duplicate.status_code == 409
    assert duplicate.headers["retry-after"] == "1"
    assert duplicate.json()["type"] == "/problems/idempotency-key-in-flight"
    assert _jobs(db_session) == 1


def _fingerprint_of(session: Session, key: str) -> str:
    record = session.get(IdempotencyRecord, ("alice", key))
    assert record is not None
    return record.request_hash


def test_a_burst_of_concurrent_duplicates_creates_exactly_one_job(
    alice: httpx.Client, db_session: Session
) -> None:
    def submit(_: int) -> httpx.Response:
        return alice.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(submit, range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {202, 409}
    accepted = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(accepted) == 1
    assert _jobs(db_session) == 1
    assert all(
        r.json()["type"] == "/problems/idempotency-key-in-flight"
        for r in responses
        if r.status_code == 409
    )


def test_an_in_flight_key_abandoned_by_a_dead_request_is_released(
    alice: httpx.Client, db_session: Session, settings: Settings
) -> None:
    probe = alice.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "probe"})
    assert probe.status_code == 202
    abandoned_at = utcnow() - timedelta(seconds=settings.idempotency_in_flight_timeout_seconds + 1)
    db_session.add(
        IdempotencyRecord(
            principal="alice",
            key="order-4",
            request_hash=_fingerprint_of(db_session, "probe"),
            state="in_flight",
            created_at=abandoned_at,
        )
    )
    db_session.commit()

    retry = alice.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "order-4"})

    assert retry.status_code == 202
    assert _jobs(db_session) == 2
