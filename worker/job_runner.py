"""One delivery of a job to this worker: claim → run the engine → publish → record the outcome.

Guarantees, and what gives each:
- A job runs once at a time: the claim is a conditional UPDATE taking a lease; a duplicate or late
  delivery finds no row to claim and returns without work.
- A job survives its worker: the work dir (`<data_dir>/work/<job_id>`) is stable across attempts,
  so the next worker resumes from the newest checkpoint there (`erase(..., resume=True)`).
- Exactly one set of artifacts: files are published under a prefix private to this attempt and
  recorded by `complete` in the same transaction that moves the job to `succeeded`; only the lease
  owner can win it, and a loser deletes what it published.
- Cancel is cooperative: the engine polls `should_cancel` at every step boundary.
"""

import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import ArtifactStore, StoredArtifact
from core.db.session import session_scope
from core.erasure.types import ErasureConfig, ErasureError, Hooks, Progress
from core.hyperparameters import Hyperparameters
from core.jobs import lifecycle
from core.jobs.lifecycle import ClaimedJob, ProgressUpdate
from core.settings import Settings
from worker import evaluation_stage
from worker.heartbeat import Heartbeat
from worker.models import engine_model_source

if TYPE_CHECKING:
    from core.erasure.types import ErasureResult

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "internal"
TIME_LIMIT = "time_limit"
INVALID_JOB = "invalid_job"


class RunOutcome(StrEnum):
    SKIPPED = "skipped"  # nothing to claim: duplicate, late or cancelled delivery
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease_lost"  # another worker owns the job now; this attempt left no trace


@dataclass(frozen=True)
class Attempt:
    """Who runs the job this time. `owner` is written to the lease; `publication` separates this
    attempt's artifacts from any other attempt's."""

    owner: str
    publication: str

    @classmethod
    def new(cls) -> "Attempt":
        token = uuid.uuid4().hex
        return cls(owner=f"{socket.gethostname()}:{os.getpid()}:{token[:12]}", publication=token)


def work_dir(settings: Settings, job_id: str) -> Path:
    return settings.resolved_data_dir / "work" / job_id


class JobRunner:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._store = store

    def run(self, job_id: str, attempt: Attempt | None = None) -> RunOutcome:
        attempt = attempt or Attempt.new()
        with session_scope(self._sessions) as session:
            job = lifecycle.claim(session, job_id, attempt.owner, self._settings.lease_seconds)
        if job is None:
            logger.info("job %s: nothing to claim (duplicate, late or cancelled delivery)", job_id)
            return RunOutcome.SKIPPED
        logger.info("job %s: claimed by %s (attempt %s)", job_id, attempt.owner, job.attempt)

        heartbeat = Heartbeat(
            self._sessions,
            job_id,
            attempt.owner,
            lease_seconds=self._settings.lease_seconds,
            interval_seconds=self._settings.heartbeat_seconds,
            cancel_poll_seconds=self._settings.cancel_poll_seconds,
        )
        with heartbeat:
            try:
                result = evaluation_stage.train_and_evaluate(
                    evaluation_stage.StageContext(
                        self._settings,
                        self._sessions,
                        job,
                        attempt.owner,
                        heartbeat,
                        work_dir(self._settings, job.id),
                    ),
                    train=lambda: self._erase(job, attempt, heartbeat),
                )
            except ErasureError as error:
                return self._fail(job_id, attempt, heartbeat, error.code, error.message)
            except SoftTimeLimitExceeded:
                message = f"the job ran past {self._settings.task_soft_time_limit}s"
                return self._fail(job_id, attempt, heartbeat, TIME_LIMIT, message)
            except Exception:
                logger.exception("job %s: unexpected error", job_id)
                message = "the worker hit an unexpected error; see its logs"
                return self._fail(job_id, attempt, heartbeat, INTERNAL_ERROR, message)

            if heartbeat.lease_lost:
                return RunOutcome.LEASE_LOST
            if result.status == "cancelled":
                return self._cancelled(job_id, attempt, result.steps_completed)
            return self._publish(job_id, attempt, heartbeat, result)

    # -- the engine run ---------------------------------------------------------------------

    def _erase(self, job: ClaimedJob, attempt: Attempt, heartbeat: Heartbeat) -> "ErasureResult":
        from core.erasure import erase  # torch: imported in the job's process only

        config = self._config(job)
        folder = work_dir(self._settings, job.id)
        folder.mkdir(parents=True, exist_ok=True)

        def on_checkpoint(step: int, path: Path) -> None:
            self._record(lifecycle.record_checkpoint, job.id, attempt.owner, step, str(path))

        def on_resume(step: int) -> None:
            logger.info("job %s: resuming from the checkpoint at step %d", job.id, step)
            self._record(lifecycle.record_resumed, job.id, attempt.owner, step)

        hooks = Hooks(
            on_progress=ThrottledProgress(
                self._sessions, job.id, attempt.owner, self._settings.progress_interval_seconds
            ),
            should_cancel=heartbeat.should_stop,
            on_checkpoint=on_checkpoint,
            on_resume=on_resume,
        )
        return erase(config, folder, hooks=hooks, resume=True)

    def _config(self, job: ClaimedJob) -> ErasureConfig:
        try:
            return ErasureConfig(
                model=engine_model_source(self._settings, job.model),
                model_name=job.model,  # the manifest names the registered model, not a path
                concepts=job.concepts,
                method=job.method,  # type: ignore[arg-type]  # validated into the enum
                train_method=job.train_method,  # type: ignore[arg-type]
                hyperparameters=Hyperparameters(**job.hyperparameters),
                seed=job.seed,
                device=self._settings.worker_device,
                sample_prompts=job.sample_prompts,
                checkpoint_every=self._settings.checkpoint_every,
                cache_dir=self._settings.resolved_data_dir / "cache",
            )
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise _InvalidJob(f"the job cannot be run: {error}") from error

    # -- outcomes ---------------------------------------------------------------------------

    def _publish(
        self, job_id: str, attempt: Attempt, heartbeat: Heartbeat, result: "ErasureResult"
    ) -> RunOutcome:
        heartbeat.beat()  # renew right before publishing; skip the work if the lease is gone
        if heartbeat.lease_lost:
            return RunOutcome.LEASE_LOST
        published: list[StoredArtifact] = []
        try:
            for name in _output_files(result.out_dir, result.outputs):
                published.append(
                    self._store.put(
                        job_id, name, result.out_dir / name, publication=attempt.publication
                    )
                )
            summary = _result_summary(result)
            with session_scope(self._sessions) as session:
                won = lifecycle.complete(session, job_id, attempt.owner, published, summary)
        except BaseException:
            self._unpublish(published)
            raise
        if not won:
            logger.warning("job %s: lost the lease before completing; unpublishing", job_id)
            self._unpublish(published)
            return RunOutcome.LEASE_LOST
        self._remove_work_dir(job_id)
        logger.info("job %s: succeeded with %d artifacts", job_id, len(published))
        return RunOutcome.SUCCEEDED

    def _cancelled(self, job_id: str, attempt: Attempt, step: int) -> RunOutcome:
        if not self._write(lifecycle.mark_cancelled, job_id, attempt.owner, step=step):
            return RunOutcome.LEASE_LOST
        self._remove_work_dir(job_id)
        logger.info("job %s: cancelled at step %d", job_id, step)
        return RunOutcome.CANCELLED

    def _fail(
        self, job_id: str, attempt: Attempt, heartbeat: Heartbeat, code: str, message: str
    ) -> RunOutcome:
        if heartbeat.lease_lost or not self._write(
            lifecycle.fail, job_id, attempt.owner, code, message
        ):
            return RunOutcome.LEASE_LOST
        self._remove_work_dir(job_id)
        logger.info("job %s: failed (%s): %s", job_id, code, message)
        return RunOutcome.FAILED

    # -- helpers ----------------------------------------------------------------------------

    def _write(self, use_case: Any, job_id: str, *args: Any, **kwargs: Any) -> bool:
        with session_scope(self._sessions) as session:
            return bool(use_case(session, job_id, *args, **kwargs))

    def _record(self, use_case: Any, job_id: str, *args: Any) -> None:
        """Best-effort bookkeeping during training (events, checkpoint rows): a database blip
        must not abort hours of work; the lease heartbeat decides whether the run goes on."""
        try:
            self._write(use_case, job_id, *args)
        except SQLAlchemyError:
            logger.exception("job %s: could not record %s", job_id, use_case.__name__)

    def _unpublish(self, published: list[StoredArtifact]) -> None:
        for artifact in published:
            self._store.delete(artifact.location)

    def _remove_work_dir(self, job_id: str) -> None:
        """The job is over: its checkpoints will never be resumed from."""
        shutil.rmtree(work_dir(self._settings, job_id), ignore_errors=True)


class _InvalidJob(ErasureError):
    code = INVALID_JOB


class ThrottledProgress:
    """The engine's progress hook: a database write at most every `interval` seconds, and always
    for the last step, so a fast model cannot flood the event log."""

    def __init__(
        self, sessions: sessionmaker[Session], job_id: str, owner: str, interval: float
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._owner = owner
        self._interval = interval
        self._last_write = float("-inf")

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.step < progress.total and now - self._last_write < self._interval:
            return
        self._last_write = now
        update = ProgressUpdate(
            step=progress.step,
            total=progress.total,
            losses=dict(progress.losses),
            adversarial_concepts=dict(progress.adversarial_concepts),
        )
        try:
            with session_scope(self._sessions) as session:
                lifecycle.record_progress(session, self._job_id, self._owner, update)
        except SQLAlchemyError:  # best effort, as for checkpoints: training goes on
            logger.exception("job %s: could not record progress", self._job_id)


def _output_files(out_dir: Path, outputs: list[str]) -> list[str]:
    """Artifact names: the engine lists files and folders (e.g. `unet`); a folder is published
    file by file under its relative POSIX path (`unet/config.json`)."""
    names: list[str] = []
    for output in outputs:
        path = out_dir / output
        if path.is_dir():
            names.extend(
                child.relative_to(out_dir).as_posix()
                for child in sorted(path.rglob("*"))
                if child.is_file()
            )
        else:
            names.append(output)
    return names


def _result_summary(result: "ErasureResult") -> dict[str, Any]:
    return {
        "steps_completed": result.steps_completed,
        "total_steps": result.total_steps,
        "resumed_from": result.resumed_from,
        "final_losses": lifecycle.finite_losses(result.final_losses),
        "wall_time_s": result.wall_time_s,
        "warnings": list(result.warnings),  # settings the engine changed, e.g. k_closest cut
        **evaluation_stage.result_fields(result),
    }
