"""A real `eraser serve` (local profile: SQLite, filesystem broker, one real worker process) for
the client, CLI and console tests, and API keys issued in its database.

A uniquely named module (tests are not a package) shared by tests/api_client and tests/ui.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.auth.keys import create_key
from core.db.session import engine_from_settings, make_session_factory, session_scope
from core.settings import Profile, Settings

ERASER = str(Path(sys.executable).with_name("eraser"))
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class LocalServer:
    url: str
    data_dir: Path
    environment: dict[str, str]
    log: Path

    def settings(self) -> Settings:
        return Settings(profile=Profile.LOCAL, data_dir=self.data_dir, database_url="")

    def issue_key(self, principal: str, *, admin: bool = False) -> str:
        """A real key in the server's database (what `eraser keys create` does)."""
        engine = engine_from_settings(self.settings())
        try:
            with session_scope(make_session_factory(engine)) as session:
                issued = (
                    create_key(session, principal, admin=True)
                    if admin
                    else create_key(session, principal)
                )
        finally:
            engine.dispose()
        return issued.key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """The test session's ERASER_* variables (its Postgres, its queue) are not the local
    profile's: drop them, so `eraser serve` stands on its own."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ERASER_")}
    return environment | {
        "ERASER_DATA_DIR": str(data_dir),
        "ERASER_PROGRESS_INTERVAL_SECONDS": "0.3",
        "ERASER_CANCEL_POLL_SECONDS": "0.5",
        "ERASER_EVENTS_POLL_SECONDS": "0.2",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


@contextmanager
def serving(tmp: Path, **extra: str) -> Iterator[LocalServer]:
    data_dir = tmp / "var"
    port = _free_port()
    environment = local_environment(data_dir, **extra)
    log = tmp / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [ERASER, "serve", "--port", str(port), "--shutdown-grace", "0", "--log-level",
             "warning"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"eraser serve exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"eraser serve not ready: {log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield LocalServer(url=url, data_dir=data_dir, environment=environment, log=log)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One `eraser serve` for the whole test session (registered as a plugin by
    tests/conftest.py): the client, CLI and console tests share it, and its start-up."""
    with serving(tmp_path_factory.mktemp("local-serve")) as running:
        yield running
