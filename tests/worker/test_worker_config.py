"""The worker's Celery configuration and the reaper's hand-off to the broker (real Redis)."""

from datetime import timedelta
from pathlib import Path

import pytest
from kombu import Connection
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs.models import Job
from core.queue import RUN_JOB_TASK, broker_transport_options
from core.settings import Profile, Settings
from worker.celery_app import celery_config
from worker.reaper import reap_once


def test_long_gpu_jobs_are_acked_late_one_at_a_time_in_fresh_processes() -> None:
    settings = Settings(profile=Profile.TEST, queue_name="gpu-a100")
    config = celery_config(settings)

    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1 and config["worker_concurrency"] == 1
    assert config["worker_pool"] == "prefork" and config["worker_max_tasks_per_child"] == 1
    assert config["result_backend"] is None
    assert config["task_default_queue"] == "gpu-a100"
    assert config["task_routes"] == {RUN_JOB_TASK: {"queue": "gpu-a100"}}
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert config["task_soft_time_limit"] < config["task_time_limit"] < visibility


def test_the_local_profile_shares_the_filesystem_broker_folders_with_the_api(
    tmp_path: Path,
) -> None:
    settings = Settings(profile=Profile.LOCAL, data_dir=tmp_path)
    options = celery_config(settings)["broker_transport_options"]

    assert options == broker_transport_options(settings)  # what the API publishes with
    broker = tmp_path.resolve() / "broker"
    assert options["data_folder_in"] == options["data_folder_out"] == str(broker / "messages")
    # kombu's default for the exchange tables is the working directory: keep them in data_dir
    assert options["control_folder"] == str(broker / "control")


@pytest.mark.parametrize(
    "limits",
    [
        {"task_soft_time_limit": 100, "task_time_limit": 100, "visibility_timeout": 200},
        {"task_soft_time_limit": 100, "task_time_limit": 200, "visibility_timeout": 150},
        {"heartbeat_seconds": 60, "lease_seconds": 30},
    ],
)
def test_settings_refuse_limits_that_would_let_a_running_job_be_redelivered(
    limits: dict[str, int],
) -> None:
    with pytest.raises(ValidationError):
        Settings(**limits)  # type: ignore[arg-type]


def test_the_reaper_puts_a_requeued_job_back_on_the_broker(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    job = Job(
        principal="alice", model="demo", concepts=["cat"], method="ap", train_method="xattn",
        status="running", attempt=1, lease_owner="gone",
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )  # fmt: skip
    with session_scope(session_factory) as session:
        session.add(job)

    outcome = reap_once(settings)

    assert outcome.requeued == [job.id]
    with Connection(settings.celery_broker_url) as connection:
        queue = connection.SimpleQueue(settings.queue_name)
        try:
            message = queue.get(timeout=5)
            message.ack()
        finally:
            queue.close()
    assert message.headers["task"] == RUN_JOB_TASK
    assert message.payload[0] == [job.id]  # args of the task
