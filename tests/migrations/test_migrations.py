"""One Alembic tree that upgrades, downgrades and upgrades again on Postgres and on SQLite, and
that describes exactly the tables the code maps (nothing to autogenerate)."""

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core.db import migrate
from core.db.base import Base
from core.db.session import make_engine

TABLES = {
    "api_keys",
    "console_sessions",
    "jobs",
    "job_events",
    "checkpoints",
    "artifacts",
    "idempotency_records",
}


@pytest.fixture(params=["postgres", "sqlite"])
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, make_postgres_database: Callable[[], str]
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'eraser.db'}"
    return make_postgres_database()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_there_is_a_single_head() -> None:
    assert len(migrate.head_revisions()) == 1


def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    assert _tables(empty_database_url) == TABLES

    migrate.downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) == set()

    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        assert migrate.is_at_head(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
