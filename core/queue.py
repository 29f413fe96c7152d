"""The API's only link to the workers: send a job id to the GPU queue by task *name*.

The API never imports `worker` (and so never torch); it needs a Celery client, not the worker app.
"""

import time
from functools import lru_cache
from pathlib import Path

from celery import Celery

from core.settings import Settings

RUN_JOB_TASK = "eraser.run_job"


@lru_cache(maxsize=4)
def _client(broker_url: str, transport_options: tuple[tuple[str, str], ...]) -> Celery:
    app = Celery("eraser-api", broker=broker_url)
    app.conf.broker_transport_options = dict(transport_options)
    app.conf.task_default_queue = "gpu"
    return app


def broker_transport_options(settings: Settings) -> dict[str, str]:
    """Options both sides must agree on. The filesystem broker needs its folders, including the
    exchange tables (`control_folder`), which kombu otherwise puts in the working directory."""
    if settings.celery_broker_url.startswith("filesystem://"):
        broker = settings.resolved_data_dir / "broker"
        messages = str(broker / "messages")
        return {
            "data_folder_in": messages,
            "data_folder_out": messages,
            "control_folder": str(broker / "control"),
        }
    return {}


def ensure_broker_folders(settings: Settings) -> None:
    """The filesystem broker fails on a folder that does not exist yet; both sides call this."""
    for key, folder in broker_transport_options(settings).items():
        if key.startswith("data_folder") or key == "control_folder":
            Path(folder).mkdir(parents=True, exist_ok=True)


def worker_ready_file(settings: Settings) -> Path:
    """Written by a worker when it is ready and touched by its reaper thread at every sweep; a
    local-profile API reads its age to tell a live worker from a dead or wedged one."""
    return settings.worker_ready_file or settings.resolved_data_dir / "worker.ready"


def worker_alive(settings: Settings) -> bool:
    """The worker's ready file was touched within three reaper periods (and 5 s of slack)."""
    try:
        age = time.time() - worker_ready_file(settings).stat().st_mtime
    except OSError:
        return False
    return age <= 3 * settings.reaper_interval_seconds + 5.0


def celery_client(settings: Settings) -> Celery:
    options = tuple(sorted(broker_transport_options(settings).items()))
    return _client(settings.celery_broker_url, options)


def enqueue_job(settings: Settings, job_id: str) -> None:
    """Publish one run message. Call only after the job row is committed."""
    celery_client(settings).send_task(RUN_JOB_TASK, args=[job_id], queue=settings.queue_name)


def broker_reachable(settings: Settings) -> bool:
    try:
        with celery_client(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
