"""The job runner in this process with the real engine on a tiny model and real Postgres: what a
worker does with one delivery (the Celery process around it is exercised in tests/e2e)."""

import hashlib
import threading
import time
from pathlib import Path

import pytest
from fast_job import FAST_HYPERPARAMETERS, PUBLISHED_ARTIFACTS
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import LocalArtifactStore, get_store
from core.db.session import session_scope
from core.jobs.models import Artifact, Job, JobEvent
from core.settings import Settings
from worker.job_runner import JobRunner, RunOutcome, work_dir


@pytest.fixture
def worker_settings(settings: Settings, tiny_model: Path) -> Settings:
    return settings.model_copy(
        update={
            "models": {"tiny": str(tiny_model)},
            "worker_device": "cpu",
            "checkpoint_every": 5,  # gives resume something to find within 20 updates
            "heartbeat_seconds": 0.2,
            "lease_seconds": 5.0,
            "progress_interval_seconds": 0.0,
        }
    )


def _job(sessions: sessionmaker[Session], model: str = "tiny", **hyperparameters: int) -> str:
    job = Job(
        principal="alice",
        model=model,
        concepts=["cat"],
        method="ap",
        train_method="xattn",
        hyperparameters={**FAST_HYPERPARAMETERS, **hyperparameters},
        sample_prompts=["a dog"],
    )
    with session_scope(sessions) as session:
        session.add(job)
    return job.id


def _event_kinds(sessions: sessionmaker[Session], job_id: str) -> list[str]:
    with sessions() as session:
        query = select(JobEvent.kind).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        return list(session.execute(query).scalars())


def test_a_delivery_runs_the_job_publishes_every_output_and_a_duplicate_does_nothing(
    worker_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    job_id = _job(session_factory)
    runner = JobRunner(worker_settings, session_factory, get_store(worker_settings))

    assert runner.run(job_id) is RunOutcome.SUCCEEDED
    assert runner.run(job_id) is RunOutcome.SKIPPED

    with session_factory() as session:
        job = session.get_one(Job, job_id)
        artifacts = session.execute(select(Artifact).where(Artifact.job_id == job_id)).scalars()
        stored = {artifact.name: artifact for artifact in artifacts}
    assert job.status == "succeeded" and job.attempt == 1
    assert job.result is not None and job.result["steps_completed"] == 20
    assert (job.progress_step, job.progress_total) == (20, 20)
    assert set(stored) >= PUBLISHED_ARTIFACTS
    store = get_store(worker_settings)
    for artifact in stored.values():
        with store.open(artifact.location) as reader:
            assert hashlib.sha256(reader.read()).hexdigest() == artifact.sha256
    assert stored["unet/config.json"].kind == "config"
    assert not work_dir(worker_settings, job_id).exists()  # checkpoints are gone with the job

    kinds = _event_kinds(session_factory, job_id)
    assert kinds[0] == "claimed" and kinds[-1] == "succeeded"
    assert kinds.count("claimed") == 1 and kinds.count("checkpoint") == 4
    assert "progress" in kinds


def test_an_engine_error_fails_the_job_with_its_code(
    worker_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    job_id = _job(session_factory, model="not-registered")

    outcome = JobRunner(worker_settings, session_factory, get_store(worker_settings)).run(job_id)

    with session_factory() as session:
        job = session.get_one(Job, job_id)
    assert outcome is RunOutcome.FAILED
    assert (job.status, job.error_code) == ("failed", "model_not_found")
    assert _event_kinds(session_factory, job_id)[-1] == "failed"


def test_a_worker_that_loses_its_lease_stops_and_publishes_nothing(
    worker_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    job_id = _job(session_factory, iterations=200)
    store = LocalArtifactStore(tmp_path / "artifacts")

    def steal_the_lease_once_training_runs() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope(session_factory) as session:
                stolen = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.progress_step >= 1)
                    .values(lease_owner="another-worker")
                )
                if getattr(stolen, "rowcount", 0) == 1:
                    return
            time.sleep(0.05)

    thief = threading.Thread(target=steal_the_lease_once_training_runs)
    thief.start()
    outcome = JobRunner(worker_settings, session_factory, store).run(job_id)
    thief.join()

    with session_factory() as session:
        job = session.get_one(Job, job_id)
        published = session.execute(select(Artifact).where(Artifact.job_id == job_id)).all()
    assert outcome is RunOutcome.LEASE_LOST
    assert job.status == "running" and job.lease_owner == "another-worker"
    assert job.progress_step is not None and job.progress_step < 200  # stopped early
    assert published == [] and not (store.root / job_id).exists()
    assert _event_kinds(session_factory, job_id)[-1] != "succeeded"


def test_progress_bookkeeping_survives_an_unreachable_database(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from core.db.session import make_engine, make_session_factory
    from core.erasure.types import Progress
    from worker.job_runner import ThrottledProgress

    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    report = ThrottledProgress(make_session_factory(unreachable), "job-1", "me", interval=0)

    report(Progress(step=1, total=2, losses={"erase": 1.0}, adversarial_concepts={}, elapsed_s=0))

    assert "could not record progress" in caplog.text  # logged, and training was not aborted


def test_a_cancel_stops_the_run_within_the_poll_period_not_the_lease_renewal_period(
    worker_settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(
        update={"heartbeat_seconds": 20.0, "lease_seconds": 60.0, "cancel_poll_seconds": 0.2}
    )
    job_id = _job(session_factory, iterations=2000)
    store = LocalArtifactStore(tmp_path / "artifacts")

    def cancel_once_training_runs() -> None:  # what the API's cancel does to a running job
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope(session_factory) as session:
                cancelled = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.progress_step >= 1)
                    .values(status="cancelling", cancel_requested=True)
                )
                if getattr(cancelled, "rowcount", 0) == 1:
                    return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_once_training_runs)
    canceller.start()
    started = time.monotonic()
    outcome = JobRunner(settings, session_factory, store).run(job_id)
    canceller.join()

    with session_factory() as session:
        job = session.get_one(Job, job_id)
    assert outcome is RunOutcome.CANCELLED and job.status == "cancelled"
    assert job.progress_step is not None and job.progress_step < 2000
    assert time.monotonic() - started < 20  # long before the first lease renewal
    assert not (store.root / job_id).exists()
