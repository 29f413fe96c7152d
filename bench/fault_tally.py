"""Fault tally: N jobs, each hit by one SIGKILL of a random worker process at a random moment.

    PYTHONPATH=$PWD .venv/bin/python bench/fault_tally.py --profile local|redis [--jobs 20]

`local`: `eraser serve` (SQLite, filesystem broker, the supervisor restarts what dies).
`redis`: Postgres (a private database) + Redis (a private queue), uvicorn and a prefork Celery
worker, restarted by this script when its main process dies (as compose's restart policy does).

For each job: submit it, wait a random 0-`--window` seconds, SIGKILL one worker process chosen at
random (main or pool child, busy or idle: whatever exists at that moment), then wait for the job
to end. A job counts as good when it succeeded with exactly one `succeeded` event and exactly one
set of artifacts (one publication folder in the store, no duplicate names in the manifest).
Prints one line per job and the tally. Loopback only; leases are short so that a kill heals in
seconds (lease 10 s, heartbeat 1 s: a shorter lease starves on a machine loaded 20 deep).
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "ERASER_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
JOB = {
    "model": "demo",
    "concepts": ["ring"],
    "hyperparameters": {"iterations": 12, "ddim_steps": 2, "k_closest": 10, "num_centers": 2},
}
FAST_HEALING = {
    "ERASER_LEASE_SECONDS": "10",
    "ERASER_HEARTBEAT_SECONDS": "1",
    "ERASER_CANCEL_POLL_SECONDS": "0.5",
    "ERASER_REAPER_INTERVAL_SECONDS": "1",
    "ERASER_REQUEUE_STALE_QUEUED_SECONDS": "6",
    "ERASER_CHECKPOINT_EVERY": "3",
    "ERASER_MAX_ATTEMPTS": "5",
    "OMP_NUM_THREADS": "1",
}
JOB_TIMEOUT_S = 300


@dataclass
class Outcome:
    index: int
    killed: str
    after_s: float
    status: str
    attempts: int
    succeeded_events: int
    artifact_sets: int
    seconds: float

    @property
    def good(self) -> bool:
        return (self.status, self.succeeded_events, self.artifact_sets) == ("succeeded", 1, 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _busy(pid: int) -> bool:
    """A process using CPU right now (a training step) vs one waiting for work."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    except OSError:
        return False


class Stack:
    base_url: str
    data_dir: Path
    environment: dict[str, str]

    def worker_processes(self) -> dict[int, str]:
        raise NotImplementedError

    def heal(self) -> None:
        """Restart what a process manager would restart."""

    def stop(self) -> None:
        raise NotImplementedError


class LocalStack(Stack):
    def __init__(self, folder: Path) -> None:
        self.data_dir = folder / "var"
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ERASER_")},
            **FAST_HEALING,
            "ERASER_DATA_DIR": str(self.data_dir),
        }
        self.server = subprocess.Popen(
            [
                str(BIN / "eraser"),
                "serve",
                "--port",
                str(port),
                "--shutdown-grace",
                "0",
                "--log-level",
                "warning",
            ],
            env=self.environment,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "serve.log").open("wb"),
        )
        self.environment["ERASER_PROFILE"] = "local"

    def worker_processes(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for pid in _children(self.server.pid):
            if "celery" in _command(pid):
                found[pid] = "worker (solo: main and job)"
                found |= {child: "worker child" for child in _children(pid)}
        return found

    def stop(self) -> None:
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)
            self.server.wait(timeout=60)


class RedisStack(Stack):
    def __init__(self, folder: Path) -> None:
        self.database = f"eraser_tally_{uuid.uuid4().hex[:10]}"
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()
        url = make_url(ADMIN_URL).set(database=self.database)
        self.data_dir = folder / "data"
        self.queue = f"gpu-tally-{uuid.uuid4().hex[:8]}"
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ERASER_")},
            **FAST_HEALING,
            "PYTHONPATH": str(REPO),
            "ERASER_PROFILE": "test",
            "ERASER_DATABASE_URL": url.render_as_string(hide_password=False),
            "ERASER_DATA_DIR": str(self.data_dir),
            "ERASER_QUEUE_NAME": self.queue,
        }
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from core.db import migrate; from core.settings import "
                "Settings; migrate.upgrade(Settings().sqlalchemy_url)",
            ],
            env=self.environment,
            cwd=REPO,
            check=True,
        )
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = (folder / "stack.log").open("wb")
        self.api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:create_app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=self.environment,
            cwd=REPO,
            stdout=self.log,
            stderr=self.log,
        )
        self.worker = self._start_worker()

    def _start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.celery_app",
                "worker",
                "--loglevel=WARNING",
                "-n",
                f"tally-{uuid.uuid4().hex[:6]}@%h",
                "-Q",
                self.queue,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=self.environment,
            cwd=REPO,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def worker_processes(self) -> dict[int, str]:
        if self.worker.poll() is not None:
            return {}
        return {self.worker.pid: "worker main"} | {
            child: "worker pool child" for child in _children(self.worker.pid)
        }

    def heal(self) -> None:
        if self.worker.poll() is not None:
            self.worker = self._start_worker()

    def stop(self) -> None:
        for process in (self.api, self.worker):
            if process.poll() is None:
                with_group = process is self.worker
                if with_group:
                    os.killpg(process.pid, signal.SIGTERM)
                else:
                    process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL) if with_group else process.kill()
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()


def _wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.base_url}/healthz", timeout=2).status_code == 200 and (
                stack.worker_processes()
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the stack did not start")


def _key(stack: Stack) -> str:
    return subprocess.run(
        [str(BIN / "eraser"), "keys", "create", "--principal", "tally"],
        env=stack.environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]


def run_job(
    stack: Stack, client: httpx.Client, index: int, window: float, rng: random.Random
) -> Outcome:
    started = time.monotonic()
    job_id = client.post("/v1/jobs", json=JOB).json()["id"]
    delay = rng.uniform(0, window)
    time.sleep(delay)
    killed = "nothing (no worker process)"
    processes = stack.worker_processes()
    if processes:
        pid = rng.choice(sorted(processes))
        state = "busy" if _busy(pid) else "idle"
        status = client.get(f"/v1/jobs/{job_id}").json()["status"]
        os.kill(pid, signal.SIGKILL)
        killed = f"{processes[pid]}, {state}, job {status}"
    job: dict[str, Any] = {}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        stack.heal()
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    events = client.get(f"/v1/jobs/{job_id}/events").json()["items"]
    manifest = client.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]
    names = [artifact["name"] for artifact in manifest]
    folder = stack.data_dir / "artifacts" / job_id
    publications = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    sets = len(publications) if len(names) == len(set(names)) and names else 0
    return Outcome(
        index,
        killed,
        delay,
        job.get("status", "?"),
        job.get("attempt", 0),
        sum(event["kind"] == "succeeded" for event in events),
        sets,
        time.monotonic() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["local", "redis"], required=True)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--window", type=float, default=12.0, help="kill within this many s")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    # SIGTERM (e.g. `timeout`) must still stop the stack and drop its database (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    folder = Path(tempfile.mkdtemp(prefix="eraser-tally-"))
    stack: Stack = LocalStack(folder) if arguments.profile == "local" else RedisStack(folder)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"# fault tally, profile {arguments.profile}, {arguments.jobs} jobs, load {load}")
    outcomes: list[Outcome] = []
    try:
        _wait_ready(stack)
        headers = {"Authorization": f"Bearer {_key(stack)}"}
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
            for index in range(1, arguments.jobs + 1):
                _wait_ready(stack)
                outcome = run_job(stack, client, index, arguments.window, rng)
                outcomes.append(outcome)
                print(
                    f"| {index} | {outcome.killed} | {outcome.after_s:.1f} s | {outcome.status} "
                    f"| {outcome.attempts} | {outcome.succeeded_events} | {outcome.artifact_sets} "
                    f"| {outcome.seconds:.0f} s |",
                    flush=True,
                )
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
    good = sum(outcome.good for outcome in outcomes)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"# {good}/{len(outcomes)} succeeded with one succeeded event and one artifact set; "
        f"load {load}"
    )
    sys.exit(0 if good == len(outcomes) == arguments.jobs else 1)


if __name__ == "__main__":
    main()
