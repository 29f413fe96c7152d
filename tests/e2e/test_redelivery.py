"""Must-show 3, literally: Redis itself delivers a running job's message a second time, because
the visibility timeout is shorter than the job, and the job still runs once.

Two real Celery workers of the production app, changed only in kombu's unacked-message handling
(`short_visibility_app`: a 2 s visibility timeout, swept every second), real Redis, Postgres and
HTTP. Nothing here sends the message twice: the duplicate comes from the broker.
"""

import re
from collections.abc import Callable

import httpx
from e2e_support import (
    WorkerProcess,
    artifact_manifest,
    create_job,
    follow_events,
    published_files,
    wait_for_event,
    wait_for_log,
)
from fast_job import FAST_HYPERPARAMETERS

from core.settings import Settings

SHORT_VISIBILITY_APP = "tests.e2e.short_visibility_app"
# Long enough on the tiny model (tens of seconds on a shared CPU) to outlive the 2 s visibility
# timeout many times over, so the redelivery lands while the first worker is still training.
ITERATIONS = 150
RECEIVED = re.compile(r"Task eraser\.run_job\[([0-9a-f-]+)\] received")


def test_a_message_redelivered_by_redis_while_its_job_runs_is_dropped(
    alice: httpx.Client,
    settings: Settings,
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    workers = [start_worker(app=SHORT_VISIBILITY_APP), start_worker(app=SHORT_VISIBILITY_APP)]
    job_id = create_job(alice, hyperparameters={**FAST_HYPERPARAMETERS, "iterations": ITERATIONS})
    wait_for_event(alice, job_id, "claimed")

    # The idle worker's sweep puts the unacked message back on the queue and takes it itself
    # (the busy one has its single prefetch slot taken): we wait for that, whenever it happens.
    dropped = f"job {job_id}: nothing to claim"
    wait_for_log(workers, dropped, timeout_s=60)
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # still the first run

    events = follow_events(alice, job_id)

    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "succeeded" and kinds.count("succeeded") == 1, kinds
    assert kinds.count("claimed") == 1 and "requeued" not in kinds, kinds
    job = alice.get(f"/v1/jobs/{job_id}").json()
    assert job["attempt"] == 1 and job["result"]["steps_completed"] == ITERATIONS

    manifest = artifact_manifest(alice, job_id)
    names = [artifact["name"] for artifact in manifest]
    assert "delta.safetensors" in names and len(names) == len(set(names))
    assert len(published_files(settings, job_id)) == len(manifest)  # one set, nothing stray

    # One worker ran the job; the other received the SAME message (same task id: a redelivery,
    # not a second send) and dropped it. Each further redelivery (should a drop take longer than
    # the timeout) is dropped too: every receipt but the first is a "nothing to claim".
    runners = [w for w in workers if f"job {job_id}: claimed by" in w.output()]
    assert len(runners) == 1, [w.output() for w in workers]
    (other,) = [w for w in workers if w is not runners[0]]
    assert dropped in other.output()
    logs = "".join(w.output() for w in workers)
    received = RECEIVED.findall(logs)
    assert len(set(received)) == 1 and len(received) >= 2, logs
    assert logs.count(dropped) == len(received) - 1, logs
