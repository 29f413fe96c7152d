"""The Celery application of the GPU workers.

Start one worker per GPU: `celery -A worker.celery_app worker -Q <queue>` (the queue, broker and
limits come from `core.settings.Settings`, i.e. `ERASER_*` variables).

The configuration is for jobs that run for hours on one GPU each:
- `task_acks_late` + `task_reject_on_worker_lost`: the message is acknowledged only when the task
  returns, so a worker that dies mid-job leaves it to be delivered again;
- prefetch 1, concurrency 1, prefork: one job per GPU, never a second one reserved behind it;
- `worker_max_tasks_per_child=1`: every job starts in a fresh process, so GPU memory (and any
  state a crashed run leaves behind) is returned to the system between jobs;
- soft < hard time limit < Redis `visibility_timeout`: a job is stopped before Redis would hand
  its message to another worker. Should a message still arrive twice, the database lease makes
  the second delivery a no-op (see `core.jobs.lifecycle.claim`).
There is no result backend: job state lives in the database only.

A readiness file is written on `worker_ready` (container healthchecks test for it) and removed on
shutdown. The reaper runs as a thread in every worker's main process (see `worker.reaper`).
"""

import logging
import warnings
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import SecurityWarning
from celery.signals import worker_ready, worker_shutdown

from core.queue import (
    RUN_JOB_TASK,
    broker_transport_options,
    ensure_broker_folders,
    worker_ready_file,
)
from core.quiet import quiet_environment
from core.settings import Settings, get_settings
from worker.reaper import ReaperThread

logger = logging.getLogger(__name__)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from ours (a plain dict, so tests can read it)."""
    transport_options: dict[str, Any] = dict(broker_transport_options(settings))
    if settings.celery_broker_url.startswith(("redis://", "rediss://")):
        transport_options["visibility_timeout"] = settings.visibility_timeout
    return {
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_pool": "prefork",
        "worker_max_tasks_per_child": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_default_queue": settings.queue_name,
        "task_routes": {RUN_JOB_TASK: {"queue": settings.queue_name}},
        "task_serializer": "json",
        "accept_content": ["json"],
        # Logs of a worker go to stdout; Celery must not replace the process's logging setup.
        "worker_hijack_root_logger": False,
    }


def ready_file(settings: Settings) -> Path:
    return worker_ready_file(settings)


def create_app(settings: Settings) -> Celery:
    ensure_broker_folders(settings)
    app = Celery("eraser-worker", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    _connect_lifecycle_signals(app, settings)
    return app


def _connect_lifecycle_signals(app: Celery, settings: Settings) -> None:
    """Readiness file and reaper, tied to this app's worker (not to every Celery app around)."""
    reaper = ReaperThread(settings, alive_file=ready_file(settings))

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        path = ready_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("ready\n")
        reaper.start()
        logger.info("worker ready (readiness file %s)", path)

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        reaper.stop()
        ready_file(settings).unlink(missing_ok=True)

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)


# Job processes fork from this one and inherit its environment: set before any engine import.
quiet_environment()
# Celery warns about running as root (containers, CI) because a pickle message would then run
# code as root; this app accepts JSON only, so the warning says nothing about this deployment.
warnings.filterwarnings("ignore", category=SecurityWarning)

# The Celery command line (`celery -A worker.celery_app worker`) needs a module-level app; it is
# built from the environment of the process that starts the worker.
app = create_app(get_settings())
