"""The local profile keeps a job across Ctrl-C: `eraser serve` is stopped while a job trains, and
started again; the job resumes from its last checkpoint and succeeds, with one set of artifacts.
Real processes throughout (supervisor, uvicorn, Celery worker), SQLite and the filesystem broker.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ERASER = str(Path(sys.executable).with_name("eraser"))
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(environment: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        [ERASER, "serve", "--port", str(port), "--shutdown-grace", "0", "--log-level", "warning"],
        env=environment,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert server.poll() is None, "eraser serve exited during start-up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "eraser serve did not become ready"
            time.sleep(0.3)
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)


def _events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/jobs/{job_id}/events").json()["items"])


def _wait_for(client: httpx.Client, job_id: str, kinds: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = [event for event in _events(client, job_id) if event["kind"] in kinds]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {kinds} event: {_events(client, job_id)}")


def test_ctrl_c_during_a_job_and_a_restart_resume_it_from_its_checkpoint(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ERASER_")}
    environment |= {
        "ERASER_DATA_DIR": str(tmp_path / "var"),
        "ERASER_CHECKPOINT_EVERY": "5",
        "ERASER_LEASE_SECONDS": "3",
        "ERASER_HEARTBEAT_SECONDS": "0.5",
        "ERASER_REAPER_INTERVAL_SECONDS": "1",
        "OMP_NUM_THREADS": "1",
    }
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    body = {
        "model": "demo",
        "concepts": ["circle"],
        "hyperparameters": {"iterations": 80, "ddim_steps": 4, "k_closest": 17, "num_centers": 5},
    }

    with _serving(environment, port) as first:
        key = subprocess.run(
            [ERASER, "keys", "create", "--principal", "ops"],
            env={**environment, "ERASER_PROFILE": "local"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            job_id = client.post("/v1/jobs", json=body).json()["id"]
            checkpoint = _wait_for(client, job_id, {"checkpoint"})
        first.send_signal(signal.SIGINT)  # Ctrl-C while the job trains
        assert first.wait(timeout=60) == 0

    with (
        _serving(environment, port),
        httpx.Client(base_url=base_url, headers=headers, timeout=30) as client,
    ):
        finished = _wait_for(client, job_id, {"succeeded", "failed", "cancelled"})
        job = client.get(f"/v1/jobs/{job_id}").json()
        events = _events(client, job_id)
        manifest = client.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]

    assert finished["kind"] == "succeeded", job
    kinds = [event["kind"] for event in events]
    assert kinds.count("claimed") == 2 and kinds.count("succeeded") == 1, kinds
    resumed = [event["data"]["step"] for event in events if event["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0] >= checkpoint["data"]["step"]
    assert job["attempt"] == 2 and job["result"]["steps_completed"] == 80
    names = [artifact["name"] for artifact in manifest]
    assert "delta.safetensors" in names and len(names) == len(set(names))
