"""Shared fixtures: a private Postgres database per test session, settings, sessions.

Several engineers run tests at the same time on one Postgres and one Redis, so each session gets
its own database (`eraser_test_<hex>`, migrated by Alembic to head, dropped at the end) and its
own Celery queue name. The variables go into `os.environ` so that subprocesses (uvicorn, Celery
workers) started by a test see the same database, data dir and queue.

Tests that touch the database ask for `settings` (or `db_session`); every row is deleted after
each such test so that tests never see each other's jobs.
"""

import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from session_queue import delete_queue_keys, purge_messages
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import core.auth.models
import core.jobs.models  # noqa: F401
from core.auth.keys import create_key
from core.db import migrate
from core.db.base import Base
from core.db.session import make_engine, make_session_factory
from core.settings import Settings

# `local_server`: one real `eraser serve` shared by the client, CLI and console tests.
pytest_plugins = ["local_server"]

# Where test databases are created; override to point the suite at another server.
ADMIN_URL = os.environ.get(
    "ERASER_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _admin_engine() -> Engine:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    """Create an empty Postgres database and return its SQLAlchemy URL."""
    admin = _admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    admin = _admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def make_postgres_database() -> Iterator[Callable[[], str]]:
    """A factory of extra empty Postgres databases (dropped after the test); returns URLs."""
    names: list[str] = []

    def make() -> str:
        name = f"eraser_extra_{uuid.uuid4().hex[:12]}"
        names.append(name)
        return create_database(name)

    yield make
    for name in names:
        drop_database(name)


@pytest.fixture(scope="session")
def test_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated private database; the session's environment points every process at it."""
    suffix = uuid.uuid4().hex[:12]
    name = f"eraser_test_{suffix}"
    url = create_database(name)
    environment = {
        "ERASER_PROFILE": "test",
        "ERASER_DATABASE_URL": url,
        "ERASER_DATA_DIR": str(tmp_path_factory.mktemp("eraser-data")),
        "ERASER_QUEUE_NAME": f"gpu-test-{suffix}",
    }
    previous = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        _delete_session_queue(Settings())
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        drop_database(name)


def _delete_session_queue(settings: Settings) -> None:
    """The session's queue leaves nothing in the Redis database other sessions share."""
    try:
        delete_queue_keys(settings.celery_broker_url, settings.queue_name)
    except redis.ConnectionError as error:  # a run that never needed Redis (migrations only)
        warnings.warn(f"could not clean queue {settings.queue_name} up: {error}", stacklevel=1)


@pytest.fixture(scope="session")
def db_engine(test_database_url: str) -> Iterator[Engine]:
    engine = make_engine(test_database_url)
    yield engine
    engine.dispose()


def _delete_all_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture
def settings(test_database_url: str, db_engine: Engine) -> Iterator[Settings]:
    """Settings of the test session (env), with every table emptied and the session queue
    purged after the test: a message left for a deleted job would reach the next test's
    consumer (a worker, or a test reading the queue) before its own."""
    yield (settings := Settings())
    _delete_all_rows(db_engine)
    purge_messages(settings)


@pytest.fixture
def session_factory(settings: Settings, db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture
def db_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def data_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir


@contextmanager
def running_api(settings: Settings) -> Iterator[str]:
    """A real uvicorn server for `create_app(settings)` on a free port; yields its base URL."""
    from api.app import create_app  # the API is only imported by tests that serve it

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def api_server_for() -> Callable[[Settings], AbstractContextManager[str]]:
    """`running_api` for tests that need an API on other settings (another database)."""
    return running_api


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return ADMIN_URL


@pytest.fixture(scope="session")
def api_base_url(test_database_url: str) -> Iterator[str]:
    """One API server for the session, on the session's database."""
    with running_api(Settings()) as base_url:
        yield base_url


@pytest.fixture
def make_api_key(session_factory: sessionmaker[Session]) -> Callable[[str], str]:
    """Issue a real API key for a principal; returns the secret."""

    def make(principal: str) -> str:
        with session_factory() as session:
            issued = create_key(session, principal)
            session.commit()
        return issued.key

    return make


@pytest.fixture
def http(api_base_url: str, settings: Settings) -> Iterator[httpx.Client]:
    """An unauthenticated client of the session's API server (rows emptied after the test)."""
    with httpx.Client(base_url=api_base_url, timeout=30) as client:
        yield client


@pytest.fixture
def alice(api_base_url: str, make_api_key: Callable[[str], str]) -> Iterator[httpx.Client]:
    """A client authenticated as principal `alice`."""
    headers = {"Authorization": f"Bearer {make_api_key('alice')}"}
    with httpx.Client(base_url=api_base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def bob(api_base_url: str, make_api_key: Callable[[str], str]) -> Iterator[httpx.Client]:
    """A client authenticated as principal `bob`."""
    headers = {"Authorization": f"Bearer {make_api_key('bob')}"}
    with httpx.Client(base_url=api_base_url, headers=headers, timeout=30) as client:
        yield client
