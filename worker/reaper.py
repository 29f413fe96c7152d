"""The reaper: finds jobs whose worker is gone and gets them moving again, and forgets
Idempotency-Key records older than `ERASER_IDEMPOTENCY_TTL_SECONDS`.

Where it runs, and why: as a daemon thread in the main process of every Celery worker (and so
also inside `eraser serve`). No Celery beat and no extra service to deploy or keep alive: if no
worker is alive, nothing could run a requeued job anyway, and the first worker to come back
sweeps. Several reapers at once are safe because every change they make is a conditional UPDATE
(`core.jobs.lifecycle.reap`): for each expired lease exactly one of them wins.

Its engine uses no connection pool: the worker's main process forks a child per job, and a
pooled connection must never be shared across a fork. One connection per sweep is cheap.
"""

import contextlib
import logging
import threading
from pathlib import Path

from sqlalchemy.pool import NullPool

from core.db.session import make_engine, make_session_factory, session_scope
from core.jobs.lifecycle import ReaperOutcome, reap
from core.queue import enqueue_job
from core.settings import Settings

logger = logging.getLogger(__name__)


def reap_once(settings: Settings) -> ReaperOutcome:
    """One sweep, committed, then the requeued jobs re-enqueued."""
    engine = make_engine(settings.sqlalchemy_url, poolclass=NullPool)
    try:
        with session_scope(make_session_factory(engine)) as session:
            outcome = reap(
                session,
                stale_queued_seconds=settings.requeue_stale_queued_seconds,
                idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            )
    finally:
        engine.dispose()
    for job_id in outcome.to_enqueue:
        enqueue_job(settings, job_id)
    if outcome.requeued or outcome.failed or outcome.cancelled or outcome.stale_requeued:
        logger.info(
            "reaper: requeued %s, failed %s, cancelled %s, re-enqueued stale %s",
            outcome.requeued,
            outcome.failed,
            outcome.cancelled,
            outcome.stale_requeued,
        )
    if outcome.idempotency_records_purged:
        logger.info(
            "reaper: forgot %d Idempotency-Key records older than %ss",
            outcome.idempotency_records_purged,
            settings.idempotency_ttl_seconds,
        )
    return outcome


class ReaperThread:
    """Runs `reap_once` every `reaper_interval_seconds` until stopped. Errors (database or
    broker down) are logged and the next sweep tries again."""

    def __init__(self, settings: Settings, alive_file: Path | None = None) -> None:
        self._settings = settings
        self._alive_file = alive_file
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="eraser-reaper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._alive_file is not None:
                # The worker's pulse: a local API's /readyz reads this file's age.
                with contextlib.suppress(OSError):
                    self._alive_file.touch()
            try:
                reap_once(self._settings)
            except Exception:
                logger.exception(
                    "reaper sweep failed; retrying in %ss", self._settings.reaper_interval_seconds
                )
            self._stopping.wait(self._settings.reaper_interval_seconds)
