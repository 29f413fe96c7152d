"""Worker-side lifecycle use cases against real Postgres: the lease decides who may act."""

import threading
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import ArtifactKind, StoredArtifact
from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs import lifecycle
from core.jobs.lifecycle import ProgressUpdate
from core.jobs.models import Artifact, Checkpoint, Job, JobEvent
from core.jobs.states import JobStatus

LEASE = 30.0


def _job(sessions: sessionmaker[Session], **values: object) -> str:
    job = Job(
        principal="alice",
        model="demo",
        concepts=["cat"],
        method="ap",
        train_method="xattn",
        **values,
    )
    with session_scope(sessions) as session:
        session.add(job)
    return job.id


def _row(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        return session.execute(select(Job).where(Job.id == job_id)).scalar_one()


def _events(sessions: sessionmaker[Session], job_id: str) -> list[tuple[str, dict]]:
    with sessions() as session:
        rows = session.execute(
            select(JobEvent.kind, JobEvent.data)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.id)
        ).all()
    return [(kind, data) for kind, data in rows]


def _claim(sessions: sessionmaker[Session], job_id: str, owner: str) -> lifecycle.ClaimedJob | None:
    with session_scope(sessions) as session:
        return lifecycle.claim(session, job_id, owner, LEASE)


def _expire_lease(sessions: sessionmaker[Session], job_id: str) -> None:
    with session_scope(sessions) as session:
        session.get_one(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)


def test_claim_takes_a_queued_job_once(session_factory: sessionmaker[Session]) -> None:
    job_id = _job(session_factory, hyperparameters={"iterations": 5}, seed=7)

    claimed = _claim(session_factory, job_id, "worker-a")
    duplicate = _claim(session_factory, job_id, "worker-b")

    assert claimed is not None and claimed.attempt == 1
    assert claimed.hyperparameters == {"iterations": 5} and claimed.seed == 7
    assert duplicate is None
    row = _row(session_factory, job_id)
    assert (row.status, row.lease_owner, row.attempt) == ("running", "worker-a", 1)
    assert row.lease_expires_at is not None and row.lease_expires_at > utcnow()
    assert [kind for kind, _ in _events(session_factory, job_id)] == ["claimed"]


def test_concurrent_claims_have_exactly_one_winner(session_factory: sessionmaker[Session]) -> None:
    job_id = _job(session_factory)
    barrier = threading.Barrier(4)
    winners: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        if _claim(session_factory, job_id, owner) is not None:
            winners.append(owner)

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1
    assert _row(session_factory, job_id).lease_owner == winners[0]


def test_an_expired_lease_can_be_reclaimed_until_attempts_run_out(
    session_factory: sessionmaker[Session],
) -> None:
    job_id = _job(session_factory, max_attempts=2)
    assert _claim(session_factory, job_id, "a") is not None
    assert _claim(session_factory, job_id, "b") is None  # live lease

    _expire_lease(session_factory, job_id)
    second = _claim(session_factory, job_id, "b")
    _expire_lease(session_factory, job_id)

    assert second is not None and second.attempt == 2
    assert _claim(session_factory, job_id, "c") is None  # max_attempts reached


def test_heartbeat_extends_only_the_owners_lease_and_reports_cancel(
    session_factory: sessionmaker[Session],
) -> None:
    job_id = _job(session_factory)
    _claim(session_factory, job_id, "a")
    before = _row(session_factory, job_id).lease_expires_at
    assert before is not None

    with session_scope(session_factory) as session:
        held = lifecycle.heartbeat(session, job_id, "a", LEASE * 2)
        stranger = lifecycle.heartbeat(session, job_id, "b", LEASE * 2)
    assert held.held and not held.cancel_requested
    assert not stranger.held
    after = _row(session_factory, job_id).lease_expires_at
    assert after is not None and after > before

    with session_scope(session_factory) as session:
        job = session.get_one(Job, job_id)
        job.status, job.cancel_requested = JobStatus.CANCELLING.value, True
    with session_scope(session_factory) as session:
        assert lifecycle.heartbeat(session, job_id, "a", LEASE).cancel_requested
        assert lifecycle.lease_status(session, job_id, "a").cancel_requested
        assert not lifecycle.lease_status(session, job_id, "b").held


def test_a_lease_renewal_is_not_a_change_clients_see(
    session_factory: sessionmaker[Session],
) -> None:
    job_id = _job(session_factory)
    _claim(session_factory, job_id, "a")
    seen = _row(session_factory, job_id).updated_at  # what the API's ETag and ETA derive from

    with session_scope(session_factory) as session:
        assert lifecycle.heartbeat(session, job_id, "a", LEASE).held

    assert _row(session_factory, job_id).updated_at == seen


def test_progress_and_checkpoints_are_written_for_the_owner_only(
    session_factory: sessionmaker[Session],
) -> None:
    job_id = _job(session_factory)
    _claim(session_factory, job_id, "a")
    update = ProgressUpdate(3, 10, {"erase": 0.5, "preserve": float("nan")}, {"cat": "dog"})

    with session_scope(session_factory) as session:
        assert lifecycle.record_progress(session, job_id, "a", update)
        assert not lifecycle.record_progress(session, job_id, "b", update)
        assert lifecycle.record_checkpoint(session, job_id, "a", 3, "/w/checkpoint-3")
        assert not lifecycle.record_checkpoint(session, job_id, "b", 4, "/w/checkpoint-4")
        assert lifecycle.record_resumed(session, job_id, "a", 3)

    row = _row(session_factory, job_id)
    assert (row.progress_step, row.progress_total) == (3, 10)
    assert row.progress_losses == {"erase": 0.5, "preserve": None}  # NaN is not JSON
    with session_factory() as session:
        assert session.execute(select(Checkpoint.step)).scalars().all() == [3]
    assert _events(session_factory, job_id)[1:] == [
        (
            "progress",
            {
                "stage": "training",
                "step": 3,
                "total": 10,
                "losses": {"erase": 0.5, "preserve": None},
                "adversarial_concepts": {"cat": "dog"},
            },
        ),
        ("checkpoint", {"step": 3}),
        ("resumed", {"step": 3}),
    ]


def _artifact(name: str) -> StoredArtifact:
    return StoredArtifact(name, ArtifactKind.REPORT, 2, "0" * 64, f"job/{name}")


def test_only_the_lease_owner_completes_and_records_artifacts(
    session_factory: sessionmaker[Session],
) -> None:
    job_id = _job(session_factory)
    _claim(session_factory, job_id, "a")

    with session_scope(session_factory) as session:
        assert not lifecycle.complete(session, job_id, "b", [_artifact("x.json")], {})
    with session_scope(session_factory) as session:
        assert lifecycle.complete(
            session, job_id, "a", [_artifact("manifest.json")], {"steps_completed": 5}
        )
    with session_scope(session_factory) as session:  # a second completion changes nothing
        assert not lifecycle.complete(session, job_id, "a", [_artifact("y.json")], {})

    row = _row(session_factory, job_id)
    assert row.status == "succeeded" and row.result == {"steps_completed": 5}
    assert row.lease_owner is None and row.finished_at is not None
    with session_factory() as session:
        assert session.execute(select(Artifact.name)).scalars().all() == ["manifest.json"]
    assert _events(session_factory, job_id)[-1] == ("succeeded", {"artifacts": ["manifest.json"]})


def test_fail_and_cancel_need_the_lease(session_factory: sessionmaker[Session]) -> None:
    failing, cancelling = _job(session_factory), _job(session_factory)
    _claim(session_factory, failing, "a")
    _claim(session_factory, cancelling, "a")
    with session_scope(session_factory) as session:
        session.get_one(Job, cancelling).status = JobStatus.CANCELLING.value

    with session_scope(session_factory) as session:
        assert not lifecycle.fail(session, failing, "b", "boom", "no")
        assert lifecycle.fail(session, failing, "a", "out_of_memory", "too big")
        assert not lifecycle.mark_cancelled(session, cancelling, "b")
        assert lifecycle.mark_cancelled(session, cancelling, "a", step=4)

    failed = _row(session_factory, failing)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "out_of_memory",
        "too big",
    )
    assert _row(session_factory, cancelling).status == "cancelled"
    assert _events(session_factory, cancelling)[-1] == ("cancelled", {"step": 4})


def test_reaper_requeues_fails_or_cancels_jobs_whose_worker_is_gone(
    session_factory: sessionmaker[Session],
) -> None:
    retry = _job(session_factory, max_attempts=3)
    exhausted = _job(session_factory, max_attempts=1)
    stopping = _job(session_factory)
    alive = _job(session_factory)
    for job_id in (retry, exhausted, stopping, alive):
        _claim(session_factory, job_id, "gone")
    with session_scope(session_factory) as session:
        session.get_one(Job, stopping).status = JobStatus.CANCELLING.value
    for job_id in (retry, exhausted, stopping):
        _expire_lease(session_factory, job_id)

    with session_scope(session_factory) as session:
        outcome = lifecycle.reap(session, stale_queued_seconds=300)

    assert outcome.requeued == [retry] and outcome.to_enqueue == [retry]
    assert outcome.failed == [exhausted] and outcome.cancelled == [stopping]
    requeued = _row(session_factory, retry)
    assert (requeued.status, requeued.lease_owner, requeued.attempt) == ("queued", None, 1)
    assert _events(session_factory, retry)[-1][0] == "requeued"
    lost = _row(session_factory, exhausted)
    assert (lost.status, lost.error_code) == ("failed", "worker_lost")
    assert _row(session_factory, stopping).status == "cancelled"
    assert _row(session_factory, alive).status == "running"
    # the old owner can no longer act on the requeued job
    with session_scope(session_factory) as session:
        assert not lifecycle.heartbeat(session, retry, "gone", LEASE).held


def test_reaper_reenqueues_a_stale_queued_job_once_per_threshold(
    session_factory: sessionmaker[Session],
) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    stale = _job(session_factory, created_at=long_ago, last_enqueued_at=long_ago)
    never_enqueued = _job(session_factory, created_at=long_ago)
    fresh = _job(session_factory, last_enqueued_at=utcnow())

    with session_scope(session_factory) as session:
        first = lifecycle.reap(session, stale_queued_seconds=300)
    with session_scope(session_factory) as session:
        second = lifecycle.reap(session, stale_queued_seconds=300)

    assert sorted(first.stale_requeued) == sorted([stale, never_enqueued])
    assert fresh not in first.to_enqueue
    assert second.to_enqueue == []
    assert _events(session_factory, stale) == [("enqueued", {"reason": "stale_queued"})]
