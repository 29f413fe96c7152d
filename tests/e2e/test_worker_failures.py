"""Must-shows 2-5: what happens when workers die, vanish, receive a job twice, or are told to
cancel. Real Celery worker processes, real Redis, real Postgres, real HTTP."""

from collections.abc import Callable
from datetime import timedelta

import httpx
from e2e_support import (
    WorkerProcess,
    artifact_manifest,
    create_job,
    event_kinds,
    follow_events,
    published_files,
    wait_for_event,
    wait_for_log,
    wait_for_status,
)
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.db.types import utcnow
from core.jobs.models import Job
from core.queue import celery_client, enqueue_job
from core.settings import Settings
from worker.job_runner import work_dir

FAST = {"iterations": 20, "ddim_steps": 4, "k_closest": 50, "num_centers": 5,
        "vocabulary_size": 200}  # fmt: skip


def _hyperparameters(iterations: int) -> dict[str, int]:
    return {**FAST, "iterations": iterations}


def _assert_one_set_of_artifacts(client: httpx.Client, settings: Settings, job_id: str) -> None:
    manifest = artifact_manifest(client, job_id)
    names = [artifact["name"] for artifact in manifest]
    assert "delta.safetensors" in names and len(names) == len(set(names))
    assert len(published_files(settings, job_id)) == len(manifest)


def test_a_job_whose_worker_is_killed_resumes_from_its_checkpoint_on_another_worker(
    alice: httpx.Client,
    settings: Settings,
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    first = start_worker()
    job_id = create_job(alice, hyperparameters=_hyperparameters(80))
    checkpoint = wait_for_event(alice, job_id, "checkpoint")
    first.kill()  # SIGKILL, worker and job child: no cleanup, the lease just stops being renewed
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "running"

    start_worker()  # its reaper requeues the job once the dead worker's lease expires
    events = follow_events(alice, job_id)

    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "succeeded" and kinds.count("succeeded") == 1, kinds
    assert kinds.count("claimed") == 2 and "requeued" in kinds
    resumed = [event["data"]["step"] for event in events if event["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0] >= checkpoint["data"]["step"]
    job = alice.get(f"/v1/jobs/{job_id}").json()
    assert job["attempt"] == 2
    assert job["result"]["resumed_from"] == resumed[0] and job["result"]["steps_completed"] == 80
    _assert_one_set_of_artifacts(alice, settings, job_id)


def test_the_same_message_delivered_twice_runs_the_job_once(
    alice: httpx.Client,
    settings: Settings,
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    workers = [start_worker(), start_worker()]
    job_id = create_job(alice, hyperparameters=_hyperparameters(40))
    enqueue_job(settings, job_id)  # a second delivery while the first is running

    events = follow_events(alice, job_id)

    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "succeeded" and kinds.count("claimed") == 1, kinds
    assert alice.get(f"/v1/jobs/{job_id}").json()["attempt"] == 1
    _assert_one_set_of_artifacts(alice, settings, job_id)
    # the duplicate was received and dropped (maybe only after the first finished)
    logs = wait_for_log(workers, "nothing to claim")
    assert logs.count("nothing to claim") == 1, logs


def test_a_job_whose_worker_vanished_is_requeued_by_the_reaper_and_finishes(
    alice: httpx.Client,
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    job_id = create_job(alice)
    # A worker took it and vanished: its message is gone, its lease has run out.
    with celery_client(settings).connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.queue_name)
    with session_scope(session_factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="running",
                attempt=1,
                lease_owner="ghost-worker",
                lease_expires_at=utcnow() - timedelta(minutes=5),
                started_at=utcnow() - timedelta(minutes=10),
            )
        )

    start_worker()
    events = follow_events(alice, job_id)

    kinds = [event["kind"] for event in events]
    requeued = next(event for event in events if event["kind"] == "requeued")
    assert requeued["data"]["worker"] == "ghost-worker"
    assert kinds[-1] == "succeeded" and kinds.index("requeued") < kinds.index("claimed")
    assert alice.get(f"/v1/jobs/{job_id}").json()["attempt"] == 2
    _assert_one_set_of_artifacts(alice, settings, job_id)


def test_cancel_while_queued_and_while_running_publishes_nothing(
    alice: httpx.Client,
    settings: Settings,
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    queued_id = create_job(alice)
    response = alice.post(f"/v1/jobs/{queued_id}/cancel")
    assert response.status_code in (200, 202), response.text
    assert alice.get(f"/v1/jobs/{queued_id}").json()["status"] == "cancelled"

    worker = start_worker()  # receives the cancelled job's message first, and drops it
    running_id = create_job(alice, hyperparameters=_hyperparameters(400))
    wait_for_event(alice, running_id, "progress")
    response = alice.post(f"/v1/jobs/{running_id}/cancel")
    assert response.status_code in (200, 202), response.text
    events = follow_events(alice, running_id)

    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "cancelled" and "cancel_requested" in kinds, kinds
    stopped_at = events[-1]["data"]["step"]
    assert stopped_at is not None and 0 < stopped_at < 400  # at a step boundary, early
    job = wait_for_status(alice, running_id, {"cancelled"})
    assert job["result"] is None
    assert artifact_manifest(alice, running_id) == []
    assert published_files(settings, running_id) == []
    assert not work_dir(settings, running_id).exists()

    assert "claimed" not in event_kinds(alice, queued_id)
    assert artifact_manifest(alice, queued_id) == []
    assert wait_for_log([worker], "nothing to claim").count("nothing to claim") == 1
