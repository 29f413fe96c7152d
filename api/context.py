"""What one app instance holds: its settings, database, artifact store and metrics.

Kept on `app.state` rather than in module globals so that several apps (tests, one per database)
live side by side in one process.
"""

from dataclasses import dataclass, field

from anyio import CapacityLimiter
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import ArtifactStore, get_store
from core.db import migrate
from core.db.session import (
    READ_POOL_SIZE,
    engine_from_settings,
    make_read_engine,
    make_read_session_factory,
    make_session_factory,
)
from core.jobs.rendering import JobRenderer
from core.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    # Autocommit connections for reads and authentication (see make_read_engine), and ORM
    # sessions over them.
    read_engine: Engine
    read_session_factory: sessionmaker[Session]
    store: ArtifactStore
    head_revisions: set[str]
    # JSON of the job views this process has served, by stored row (core.jobs.rendering).
    renderer: JobRenderer
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # How many polling reads run at once (api.dependencies.read_as_caller): the read pool's size.
    read_limiter: CapacityLimiter = field(default_factory=lambda: CapacityLimiter(READ_POOL_SIZE))

    @classmethod
    def from_settings(cls, settings: Settings) -> "AppContext":
        engine = engine_from_settings(settings, pre_ping=False)
        read_engine = make_read_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            read_engine=read_engine,
            read_session_factory=make_read_session_factory(read_engine),
            store=get_store(settings),
            head_revisions=migrate.head_revisions(settings.sqlalchemy_url),
            renderer=JobRenderer(settings.rendered_jobs_cache),
        )
