"""The ETA a client reads from GET /v1/jobs/{id} after a job was resumed on another worker.

A worker claims the job, trains, dies; the reaper requeues it; a second worker claims it much
later and resumes from a checkpoint. The ETA must be this attempt's rate (its own steps over its
own time), and `started_at` must stay the first start. Real HTTP, real Postgres, the real
lifecycle functions the worker and reaper call, with claim times set in the past.
"""

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs import lifecycle
from core.jobs.lifecycle import ProgressUpdate

TOTAL = 100


def _create(client: httpx.Client) -> str:
    response = client.post("/v1/jobs", json={"model": "demo", "concepts": ["ring"]})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _claim(factory: sessionmaker[Session], job_id: str, owner: str, at: datetime) -> None:
    with session_scope(factory) as session:
        assert lifecycle.claim(session, job_id, owner, lease_seconds=60, now=at) is not None


def _progress(factory: sessionmaker[Session], job_id: str, owner: str, step: int) -> None:
    with session_scope(factory) as session:
        update = ProgressUpdate(step=step, total=TOTAL, losses={"loss": 0.1})
        assert lifecycle.record_progress(session, job_id, owner, update)


def _first_attempt_dies_at_step_50(factory: sessionmaker[Session], job_id: str) -> datetime:
    """Claimed 1000 s ago, reached step 50, then its worker vanished and the reaper requeued
    the job. Returns the first claim's time."""
    first_start = utcnow() - timedelta(seconds=1000)
    _claim(factory, job_id, "worker-1", first_start)
    _progress(factory, job_id, "worker-1", 50)
    with session_scope(factory) as session:
        outcome = lifecycle.reap(
            session, stale_queued_seconds=3600, now=first_start + timedelta(seconds=500)
        )
    assert outcome.requeued == [job_id]
    return first_start


def _job(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_resumed_job_shows_the_eta_of_its_current_attempt_and_keeps_its_first_start(
    alice: httpx.Client, session_factory: sessionmaker[Session]
) -> None:
    job_id = _create(alice)
    first_start = _first_attempt_dies_at_step_50(session_factory, job_id)

    # The second worker claims it 100 s ago and resumes from the checkpoint at step 40.
    _claim(session_factory, job_id, "worker-2", utcnow() - timedelta(seconds=100))
    before_own_progress = _job(alice, job_id)
    with session_scope(session_factory) as session:
        assert lifecycle.record_resumed(session, job_id, "worker-2", 40)
    _progress(session_factory, job_id, "worker-2", 60)

    job = _job(alice, job_id)

    # Until the new attempt reports a step of its own there is nothing to measure a rate from
    # (the step shown is still the dead worker's).
    assert before_own_progress["progress"]["step"] == 50
    assert before_own_progress["progress"]["eta_seconds"] is None
    assert job["status"] == "running" and job["attempt"] == 2
    assert datetime.fromisoformat(job["started_at"]) == first_start
    # 20 steps (40 → 60) in ~100 s: 5 s a step, 40 steps to go. Measured from the first start it
    # would be ~1000/60*40 = 667 s; from a reset start over all 60 steps, ~67 s.
    assert job["progress"]["step"] == 60
    assert job["progress"]["eta_seconds"] == pytest.approx(200, abs=10)


def test_an_attempt_that_restarts_from_scratch_counts_its_steps_from_zero(
    alice: httpx.Client, session_factory: sessionmaker[Session]
) -> None:
    job_id = _create(alice)
    _first_attempt_dies_at_step_50(session_factory, job_id)

    # No checkpoint survived: the second attempt starts over and is at step 10 after ~100 s.
    _claim(session_factory, job_id, "worker-2", utcnow() - timedelta(seconds=100))
    _progress(session_factory, job_id, "worker-2", 10)

    progress = _job(alice, job_id)["progress"]

    assert progress["step"] == 10
    assert progress["eta_seconds"] == pytest.approx(100 / 10 * 90, abs=20)
