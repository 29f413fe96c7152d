"""The state machine's conditional transitions against real Postgres: a lost race returns False."""

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db.types import utcnow
from core.jobs.events import add_event
from core.jobs.models import Job, JobEvent
from core.jobs.states import IllegalTransitionError, JobStatus, transition


def _queued_job(session: Session) -> str:
    job = Job(
        principal="alice",
        model="demo",
        concepts=["cat"],
        method="ap",
        train_method="xattn",
    )
    session.add(job)
    session.commit()
    return job.id


def test_transition_from_an_allowed_state_wins_and_sets_values(db_session: Session) -> None:
    job_id = _queued_job(db_session)
    expires = utcnow() + timedelta(seconds=60)

    won = transition(
        db_session,
        job_id,
        JobStatus.RUNNING,
        from_={JobStatus.QUEUED},
        lease_owner="worker-1",
        lease_expires_at=expires,
        attempt=Job.attempt + 1,
    )
    db_session.commit()

    job = db_session.get(Job, job_id, populate_existing=True)
    assert won is True
    assert job is not None
    assert job.status == JobStatus.RUNNING
    assert job.lease_owner == "worker-1"
    assert job.attempt == 1
    assert job.lease_expires_at == expires.replace(microsecond=expires.microsecond)
    assert job.finished_at is None


def test_the_second_of_two_racing_claims_loses(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as setup:
        job_id = _queued_job(setup)

    with session_factory() as first, session_factory() as second:
        assert transition(
            first, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED}, lease_owner="a"
        )
        first.commit()
        assert not transition(
            second, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED}, lease_owner="b"
        )
        second.commit()

    with session_factory() as check:
        job = check.get(Job, job_id)
        assert job is not None and job.lease_owner == "a"


def test_extra_where_clauses_guard_the_update(db_session: Session) -> None:
    job_id = _queued_job(db_session)
    transition(db_session, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED}, lease_owner="a")
    db_session.commit()

    # Only the lease owner may complete the job.
    assert not transition(
        db_session,
        job_id,
        JobStatus.SUCCEEDED,
        from_={JobStatus.RUNNING},
        where=[Job.lease_owner == "b"],
    )
    assert transition(
        db_session,
        job_id,
        JobStatus.SUCCEEDED,
        from_={JobStatus.RUNNING},
        where=[Job.lease_owner == "a"],
    )
    db_session.commit()
    job = db_session.get(Job, job_id, populate_existing=True)
    assert job is not None
    assert job.status == JobStatus.SUCCEEDED
    assert job.finished_at is not None


def test_terminal_jobs_never_move_and_illegal_transitions_are_refused(
    db_session: Session,
) -> None:
    job_id = _queued_job(db_session)
    assert transition(db_session, job_id, JobStatus.CANCELLED, from_={JobStatus.QUEUED})
    db_session.commit()
    assert not transition(db_session, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED})

    with pytest.raises(IllegalTransitionError):
        transition(db_session, job_id, JobStatus.RUNNING, from_={JobStatus.CANCELLED})
    with pytest.raises(IllegalTransitionError):
        transition(db_session, job_id, JobStatus.SUCCEEDED, from_={JobStatus.QUEUED})


def test_events_get_increasing_ids_in_the_callers_transaction(db_session: Session) -> None:
    job_id = _queued_job(db_session)
    first = add_event(db_session, job_id, "created", {"concepts": ["cat"]})
    second = add_event(db_session, job_id, "enqueued")
    db_session.commit()

    assert second.id > first.id
    stored = db_session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.id).all()
    assert [(event.kind, event.data) for event in stored] == [
        ("created", {"concepts": ["cat"]}),
        ("enqueued", {}),
    ]
