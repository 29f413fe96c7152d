"""Issue 14 item 1 (and 7): what a new user's first jobs on the built-in `demo` model now show.
The job runner with the real engine, the committed demo model, real Postgres."""

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import get_store
from core.db.session import session_scope
from core.jobs.models import Artifact, Job, JobEvent
from core.settings import Settings
from worker.job_runner import JobRunner, RunOutcome

FAST = {"iterations": 2, "ddim_steps": 4}


def _job(sessions: sessionmaker[Session], model: str, concept: str, **hyperparameters: int) -> str:
    job = Job(
        principal="alice",
        model=model,
        concepts=[concept],
        method="ap",
        train_method="xattn",
        hyperparameters={**FAST, **hyperparameters},
    )
    with session_scope(sessions) as session:
        session.add(job)
    return job.id


def _runner(settings: Settings, sessions: sessionmaker[Session], **models: str) -> JobRunner:
    worker_settings = settings.model_copy(
        update={"worker_device": "cpu", "progress_interval_seconds": 0.0, "models": models}
    )
    return JobRunner(worker_settings, sessions, get_store(worker_settings))


def test_a_concept_the_demo_model_cannot_represent_is_refused_before_training(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """`{"model": "demo", "concepts": ["a cat"]}` trained for minutes and "succeeded" with a
    uniform adversary. It now fails in seconds, naming the words the model knows."""
    job_id = _job(session_factory, "demo", "a cat")
    assert _runner(settings, session_factory).run(job_id) is RunOutcome.FAILED

    with session_factory() as session:
        job = session.get_one(Job, job_id)
        kinds = session.execute(
            select(JobEvent.kind).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).scalars()
        kinds = list(kinds)
    assert job.error_code == "bad_concept"
    assert job.error_message is not None
    assert "does not know 'cat'" in job.error_message
    for word in ("circle", "square", "ring", "red", "green", "blue"):
        assert word in job.error_message
    assert "progress" not in kinds and "checkpoint" not in kinds


def test_clamped_hyperparameters_are_reported_on_the_job_and_in_the_manifest(
    settings: Settings, session_factory: sessionmaker[Session], tiny_model: Path
) -> None:
    """A K larger than the vocabulary (the default 1000 on the demo's 17 other words) was cut
    silently; the job's result and the manifest now say so. The tiny model stands in for the
    demo (same path, a tenth of the cost); the manifest names it as the job did, not by path."""
    job_id = _job(session_factory, "tiny", "cat", k_closest=50, num_centers=4, vocabulary_size=20)
    runner = _runner(settings, session_factory, tiny=str(tiny_model))
    assert runner.run(job_id) is RunOutcome.SUCCEEDED

    with session_factory() as session:
        job = session.get_one(Job, job_id)
        manifest_row = session.execute(
            select(Artifact).where(Artifact.job_id == job_id, Artifact.name == "manifest.json")
        ).scalar_one()
    assert job.result is not None
    warnings = job.result["warnings"]
    assert warnings == [
        "k_closest 50 is more than the 20 candidate words (the tokenizer's, minus the erased "
        "concepts): used 20"
    ]
    manifest = json.loads(get_store(settings).open(manifest_row.location).read())
    assert manifest["warnings"] == warnings
    assert manifest["base_model"]["id"] == "tiny"  # the registered name, not the worker's folder
    assert str(tiny_model) not in json.dumps(manifest)
