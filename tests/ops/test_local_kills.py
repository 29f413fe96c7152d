"""The local profile survives any single process kill (issue 10 items 3, 4, 10), with real
processes: `eraser serve`, its uvicorn and its Celery worker, SQLite and the filesystem broker.

- SIGKILL of the idle worker: the supervisor starts a new one, the API keeps answering, and a job
  submitted afterwards runs to success (it used to stay queued forever behind a dead child's lock).
- A wedged worker (SIGSTOP) is reported by /readyz as `worker: false`, and recovers.
- SIGKILL of `eraser serve` takes its children with it: the port is free for the next start.
- A start on a port someone else holds fails at once, before claiming the API is up.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ERASER = str(Path(sys.executable).with_name("eraser"))
TIMEOUT_S = 180
JOB = {
    "model": "demo",
    "concepts": ["ring"],
    "hyperparameters": {"iterations": 3, "ddim_steps": 2, "k_closest": 10, "num_centers": 2},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return 0


def _children(pid: int) -> dict[str, int]:
    """The supervisor's children by role (from their command lines in /proc)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found["worker" if "celery" in command else "api"] = int(entry.name)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_local_profile_survives_single_process_kills(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ERASER_")}
    environment |= {
        "ERASER_DATA_DIR": str(tmp_path / "var"),
        "ERASER_REAPER_INTERVAL_SECONDS": "1",
        "OMP_NUM_THREADS": "1",
    }
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        ERASER,
        "serve",
        "--port",
        str(port),
        "--shutdown-grace",
        "0",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, env=environment, start_new_session=True)
    try:
        _until(lambda: _status(f"{base_url}/readyz") == 200, "a ready local service")
        key = subprocess.run(
            [ERASER, "keys", "create", "--principal", "ops"],
            env={**environment, "ERASER_PROFILE": "local"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]

        # A second start on the same port fails at once and says why.
        second = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode != 0
        assert "cannot listen" in second.stderr and "API on" not in second.stdout

        # SIGKILL of the idle worker: restarted, the API never stops answering, jobs run.
        worker = _children(server.pid)["worker"]
        os.kill(worker, signal.SIGKILL)
        _until(lambda: _children(server.pid).get("worker", worker) != worker, "a new worker")
        assert _status(f"{base_url}/healthz") == 200
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            job_id = client.post("/v1/jobs", json=JOB).json()["id"]
            _until(
                lambda: (
                    client.get(f"/v1/jobs/{job_id}").json()["status"] in ("succeeded", "failed")
                ),
                "the job to finish",
            )
            assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"

        # A wedged worker is not ready; it is again once it moves.
        worker = _children(server.pid)["worker"]
        os.kill(worker, signal.SIGSTOP)
        try:
            _until(lambda: _status(f"{base_url}/readyz") == 503, "readyz to notice", 30)
            assert httpx.get(f"{base_url}/readyz").json()["checks"]["worker"] is False
        finally:
            os.kill(worker, signal.SIGCONT)
        _until(lambda: _status(f"{base_url}/readyz") == 200, "readyz to recover", 30)

        # kill -9 of the supervisor: its children go with it, the port is free again.
        children = _children(server.pid)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        _until(lambda: not any(_alive(pid) for pid in children.values()), "orphans to die", 30)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
