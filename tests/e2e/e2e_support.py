"""Helpers of the end-to-end tests: worker processes and HTTP calls that drive jobs.

A module of its own (not conftest.py) so that tests import it by a name no other test folder uses.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fast_job import FAST_HYPERPARAMETERS
from httpx_sse import connect_sse

from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


WORKER_ENVIRONMENT = {
    "ERASER_WORKER_DEVICE": "cpu",
    "ERASER_CHECKPOINT_EVERY": "5",
    "ERASER_LEASE_SECONDS": "5",
    "ERASER_HEARTBEAT_SECONDS": "0.5",
    "ERASER_REAPER_INTERVAL_SECONDS": "1",
    "ERASER_PROGRESS_INTERVAL_SECONDS": "0.2",
    # The CPU is shared: one thread per training process.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
WORKER_START_TIMEOUT_S = 60
WORKER_APP = "worker.celery_app"  # the production app; tests may start another module's app
TERMINAL_STATUSES = {"succeeded", "failed", "cancelled"}


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_file: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its job child at once: no cleanup code runs anywhere."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace_s: float = 10) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()


# -- HTTP helpers ---------------------------------------------------------------------------


def create_job(client: httpx.Client, **overrides: Any) -> str:
    body: dict[str, Any] = {
        "model": "tiny",
        "concepts": ["cat"],
        "hyperparameters": FAST_HYPERPARAMETERS,
        "seed": 1,
        **overrides,
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def follow_events(
    client: httpx.Client, job_id: str, *, last_event_id: int | None = None, timeout_s: float = 180
) -> list[dict[str, Any]]:
    """Every event of the job over SSE until its stream ends (after the final event)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[dict[str, Any]] = []
    with connect_sse(
        client, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout_s
    ) as source:
        assert source.response.status_code == 200, source.response.read()
        for message in source.iter_sse():
            if not message.data:
                continue  # keep-alive
            event = message.json()
            assert message.event == event["kind"] and message.id == str(event["id"])
            events.append(event)
    return events


def wait_for_event(
    client: httpx.Client, job_id: str, kind: str, *, timeout_s: float = 120
) -> dict[str, Any]:
    """Poll the JSON event log until an event of `kind` appears; returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}/events")
        assert response.status_code == 200, response.text
        for event in response.json()["items"]:
            if event["kind"] == kind:
                return dict(event)
        time.sleep(0.1)
    raise AssertionError(f"no {kind!r} event for job {job_id} within {timeout_s}s")


def wait_for_status(
    client: httpx.Client, job_id: str, statuses: set[str], *, timeout_s: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not in {statuses} within {timeout_s}s")


def event_kinds(client: httpx.Client, job_id: str) -> list[str]:
    response = client.get(f"/v1/jobs/{job_id}/events")
    return [event["kind"] for event in response.json()["items"]]


def wait_for_log(workers: list[WorkerProcess], text: str, *, timeout_s: float = 60) -> str:
    """Wait until `text` appears in the workers' combined log; returns that log."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = "".join(worker.output() for worker in workers)
        if text in logs:
            return logs
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the worker logs:\n{logs}")
        time.sleep(0.2)


def artifact_manifest(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/artifacts")
    assert response.status_code == 200, response.text
    return list(response.json()["artifacts"])


def published_files(settings: Settings, job_id: str) -> list[Path]:
    """Every file the artifact store holds for a job (whatever the publication)."""
    root = settings.resolved_data_dir / "artifacts" / job_id
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
