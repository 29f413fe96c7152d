"""End-to-end fixtures: real Celery worker processes, a tiny model in the registry, and helpers
that drive jobs over real HTTP (the API server and clients come from tests/conftest.py).

Workers run as `celery -A worker.celery_app worker` subprocesses in their own process group (so a
test can SIGKILL a worker together with its job child), with the session's environment (database,
data dir, queue) and short lease, heartbeat and reaper periods so that failures heal in seconds.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_support import (
    REPO_ROOT,
    WORKER_APP,
    WORKER_ENVIRONMENT,
    WORKER_START_TIMEOUT_S,
    WorkerProcess,
)

from core.queue import celery_client
from core.registry import add_model
from core.settings import Settings


@pytest.fixture(scope="session")
def tiny_model(test_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Registers a tiny random-weight pipeline as model `tiny` (in the data dir's registry file,
    which the API and every worker of the session read). Returns its folder."""
    from core.erasure.tiny import make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)
    add_model(Settings(), "tiny", str(folder))
    return str(folder)


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real Celery workers on the session's queue; all are stopped after the test.

    The queue is purged first: earlier tests (the API's) leave messages for jobs whose rows are
    gone, and a worker would spend a process start on each before reaching this test's jobs.
    """
    with celery_client(settings).connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.queue_name)
    started: list[WorkerProcess] = []

    def start(app: str = WORKER_APP, **environment: str) -> WorkerProcess:
        """A worker of Celery app module `app` (the real one unless a test needs another)."""
        name = f"w{len(started) + 1}-{uuid.uuid4().hex[:6]}"
        ready_file = tmp_path / f"{name}.ready"
        log = tmp_path / f"{name}.log"
        env = {
            **os.environ,
            **WORKER_ENVIRONMENT,
            **environment,
            "ERASER_WORKER_READY_FILE": str(ready_file),
        }
        command = [
            sys.executable, "-m", "celery", "-A", app, "worker",
            "--loglevel=INFO", "-n", f"{name}@%h", "-Q", settings.queue_name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for kill()
            )
        worker = WorkerProcess(name, process, log, ready_file)
        started.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while not ready_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {name} did not start:\n{worker.output()}")
            time.sleep(0.1)
        return worker

    yield start
    for worker in started:
        worker.stop()
