"""Upgrading a live database to the attempt columns (0002): jobs a worker holds keep an ETA,
finished jobs are left alone, and the jobs table keeps its status check. Postgres and SQLite."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import migrate
from core.db.session import make_engine
from core.jobs.models import Job

STARTED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, make_postgres_database: Callable[[], str]
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'eraser.db'}"
    return make_postgres_database()


def _insert_job(engine: Engine, job_id: str, status: str) -> None:
    # Only the columns revision 0001 has: the ORM model already maps the new ones.
    with engine.begin() as connection:
        connection.execute(
            insert(Job).values(
                id=job_id, principal="alice", status=status, model="demo", concepts=["cat"],
                method="ap", train_method="xattn", hyperparameters={}, seed=0,
                sample_prompts=[], metadata={}, attempt=1, max_attempts=3,
                cancel_requested=False, created_at=STARTED, updated_at=STARTED,
                started_at=STARTED, progress_step=10, progress_total=100,
            )
        )  # fmt: skip


def test_upgrade_dates_the_running_attempt_and_leaves_finished_jobs(database_url: str) -> None:
    migrate.upgrade(database_url, "0001")
    engine = make_engine(database_url)
    try:
        _insert_job(engine, "running-job", "running")
        _insert_job(engine, "finished-job", "succeeded")

        migrate.upgrade(database_url)

        with engine.connect() as connection:
            rows = {
                row.id: row
                for row in connection.execute(
                    select(Job.id, Job.attempt_started_at, Job.attempt_start_step)
                )
            }
        assert rows["running-job"].attempt_started_at == STARTED
        assert rows["running-job"].attempt_start_step == 0
        assert rows["finished-job"].attempt_started_at is None
        assert rows["finished-job"].attempt_start_step is None
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == "running-job").values(status="bogus"))
    finally:
        engine.dispose()
