"""Engine and session factory built from Settings.

SQLite (local profile) gets WAL (API and worker processes read while another writes), foreign keys
(off by default in SQLite) and a busy timeout (wait for the writer rather than fail at once).
Workers' Postgres engines get `pool_pre_ping` so that a connection broken by a database restart is
replaced instead of failing hours of training. The API's do not: a ping is one more round trip on
every request of the hottest path (polling reads); a connection found dead fails that one request
with a 503 + Retry-After, and SQLAlchemy then discards the whole pool.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Fail a Postgres connect after this long instead of the OS TCP timeout (minutes), so that
# /readyz answers 503 promptly when the database host is unreachable.
POSTGRES_CONNECT_TIMEOUT_S = 5
# Connections an API process keeps for reads (SQLAlchemy's default pool size). The hot reads run
# at most this many at a time (api.dependencies.read_as_caller), so they never open and close
# overflow connections under a burst, which costs more than the read.
READ_POOL_SIZE = 5


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


_JSON_DECODER = json.JSONDecoder()


def json_loads(document: str | bytes | bytearray | memoryview) -> Any:
    """What json.loads does with a stored JSON column, less its per-call work (sniffing the
    encoding of bytes, building a decoder call): psycopg hands each JSON value over as UTF-8
    bytes, and a page of 20 jobs not yet rendered (core.jobs.rendering) decodes 140 of them,
    where those calls cost more than the parsing."""
    if not isinstance(document, str):
        document = bytes(document).decode("utf-8")
    return _JSON_DECODER.decode(document)


def make_engine(url: str, *, pre_ping: bool = True, **kwargs: Any) -> Engine:
    """An engine for `url` with the backend-specific settings above."""
    kwargs.setdefault("json_deserializer", json_loads)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if url.startswith("postgresql"):
        kwargs.setdefault("connect_args", {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
    return create_engine(url, pool_pre_ping=pre_ping, **kwargs)


def engine_from_settings(settings: Settings, *, pre_ping: bool = True) -> Engine:
    if settings.sqlalchemy_url.startswith("sqlite"):
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.sqlalchemy_url, pre_ping=pre_ping)


def make_read_engine(settings: Settings) -> Engine:
    """The API's engine for requests that only read: its connections are autocommit for good,
    so a read is its SELECTs alone, without the BEGIN and COMMIT round trips of a transaction
    (each statement sees committed data), and none is reset when it goes back to the pool (no
    isolation level to switch back and forth on each checkout, no ROLLBACK of a transaction that
    never began). No pre-ping, as for the API's other engine."""
    if settings.sqlalchemy_url.startswith("sqlite"):
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(
        settings.sqlalchemy_url,
        pre_ping=False,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_size=READ_POOL_SIZE,
    )


def make_read_session_factory(read_engine: Engine) -> sessionmaker[Session]:
    """Sessions over `make_read_engine`'s connections, for the reads that still use the ORM."""
    return sessionmaker(bind=read_engine, expire_on_commit=False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: use cases return ORM objects that routes serialise after commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
