"""Any seed the API accepts runs, and a run whose loss goes non-finite fails at once as
`diverged` (real engine on a tiny model, real Postgres)."""

from pathlib import Path

import pytest
from fast_job import FAST_HYPERPARAMETERS
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import get_store
from core.db.session import session_scope
from core.jobs.models import Job, JobEvent
from core.jobs.schemas import MAX_SEED
from core.settings import Settings
from worker.job_runner import JobRunner, RunOutcome


@pytest.fixture
def worker_settings(settings: Settings, tiny_model: Path) -> Settings:
    return settings.model_copy(
        update={
            "models": {"tiny": str(tiny_model)},
            "worker_device": "cpu",
            "checkpoint_every": 0,
            "progress_interval_seconds": 0.0,
        }
    )


def _job(sessions: sessionmaker[Session], seed: int, **hyperparameters: float) -> str:
    job = Job(
        principal="alice",
        model="tiny",
        concepts=["cat"],
        method="ap",
        train_method="xattn",
        hyperparameters={**FAST_HYPERPARAMETERS, "iterations": 3, **hyperparameters},
        seed=seed,
        sample_prompts=["a dog"],
    )
    with session_scope(sessions) as session:
        session.add(job)
    return job.id


@pytest.mark.parametrize("seed", [2**40, MAX_SEED])
def test_an_ap_job_with_any_accepted_seed_succeeds(
    worker_settings: Settings, session_factory: sessionmaker[Session], seed: int
) -> None:
    job_id = _job(session_factory, seed)

    outcome = JobRunner(worker_settings, session_factory, get_store(worker_settings)).run(job_id)

    with session_factory() as session:
        job = session.get_one(Job, job_id)
    assert (outcome, job.status, job.error_code) == (RunOutcome.SUCCEEDED, "succeeded", None)
    assert job.seed == seed


def test_a_non_finite_loss_fails_the_job_as_diverged_at_the_first_bad_update(
    worker_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    # The paper's adversary at a temperature that overflows its Gumbel-softmax
    job_id = _job(session_factory, 0, iterations=50, adversary="gumbel", gumbel_temperature=1e-300)

    outcome = JobRunner(worker_settings, session_factory, get_store(worker_settings)).run(job_id)

    with session_factory() as session:
        job = session.get_one(Job, job_id)
        kinds = list(
            session.scalars(
                select(JobEvent.kind).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            )
        )
    assert (outcome, job.status, job.error_code) == (RunOutcome.FAILED, "failed", "diverged")
    assert job.error_message and "loss" in job.error_message
    assert (job.progress_step or 0) < 50  # stopped at once, not after the whole run
    assert kinds[-1] == "failed" and "succeeded" not in kinds
