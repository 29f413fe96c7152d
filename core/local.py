"""`eraser serve`: the whole service on one machine, no Docker, one command.

Profile `local`: a SQLite file (WAL) and Celery's filesystem broker under the data dir
(`ERASER_DATA_DIR`, default `./var`), the schema migrated on start, then two children supervised
by this process: the API (uvicorn) and one real Celery worker (which also runs the reaper). It is
the same code and the same migrations as the compose stack, only the backends differ.

Ctrl-C or SIGTERM stops both: the API at once, the worker with a grace period after which a
running job is interrupted. Nothing is lost by that: the job's lease lapses and, on the next
start, the reaper requeues it and the worker resumes it from its newest checkpoint.

Any single process may die (issue 10): a child that exits is started again (the API keeps serving
while the worker restarts, and the other way round); the children die with this supervisor (a
parent-death signal), so a `kill -9` of it leaves no orphan holding the port; the API's socket is
bound here and handed to uvicorn, so a start fails at once on a port that is not free instead of
mistaking another process's answer for its own.

The local worker uses Celery's `solo` pool: the job runs in the worker process itself. The prefork
pool over the filesystem broker shares one lock among its children, and a child killed while idle
dies holding it, wedging its replacement forever; a single process has no such lock, and the
supervisor restarts it if it dies. (The compose workers keep prefork, whose Redis transport uses
per-child pipes.) The cost: Celery's time limits are not enforced on this profile.

The children run with the broker folder as their working directory: kombu's filesystem transport
keeps its exchange tables in a folder relative to the working directory, which must be the same
for the API (publisher) and the worker (consumer), and should not litter the user's directory.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx

from core.db import migrate
from core.queue import ensure_broker_folders
from core.quiet import QUIET_ENVIRONMENT
from core.settings import Profile, Settings

_POLL_SECONDS = 0.2
_API_START_TIMEOUT_SECONDS = 60
_SIGNAL_WAIT_SECONDS = 5  # after a kill signal: only the OS is left to act
# A child that keeps dying is restarted at most this often, so a broken setup does not spin.
_RESTART_BACKOFF_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    arguments: Sequence[str] = ()
    pass_fds: tuple[int, ...] = ()
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, number: signal.Signals, group: bool = True) -> None:
        if self.running():
            if group:
                os.killpg(self.process.pid, number)
            else:
                os.kill(self.process.pid, number)

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


@dataclass
class LocalStack:
    """The API and one worker as child processes of this one, sharing one environment."""

    host: str
    port: int
    data_dir: Path
    shutdown_grace_seconds: float = 10.0
    log_level: str = "info"
    echo: Callable[[str], None] = click.echo
    _children: list[_Child] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None

    @property
    def environment(self) -> dict[str, str]:
        return local_environment(self.data_dir)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def settings(self) -> Settings:
        return Settings(profile=Profile.LOCAL, data_dir=self.data_dir)

    def prepare(self) -> Settings:
        """Folders, then the database schema at head (idempotent)."""
        settings = self.settings()
        ensure_broker_folders(settings)
        migrate.upgrade(settings.sqlalchemy_url)
        return settings

    def run(self) -> int:
        """Start everything, block until Ctrl-C/SIGTERM or a child dies; returns an exit code."""
        settings = self.prepare()
        previous = {
            number: signal.signal(number, lambda *_: self._stopping.set())
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._start(settings)
            self._wait_for_api()
            self.echo(
                f"eraser: API on {self.base_url} (docs {self.base_url}/docs), one worker, "
                f"data in {settings.resolved_data_dir}. Ctrl-C to stop."
            )
            while not self._stopping.is_set():
                for child in self._children:
                    if not child.running() and not self._stopping.is_set():
                        self._restart(child, settings)
                self._stopping.wait(_POLL_SECONDS)
            return 0
        finally:
            self.stop()
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _restart(self, child: _Child, settings: Settings) -> None:
        """A child died (killed, crashed): start it again, the other one keeps running. The job
        it may have been running is not lost: its lease lapses and the reaper requeues it."""
        wait = child.started_at + _RESTART_BACKOFF_SECONDS - time.monotonic()
        if wait > 0:
            return  # checked again on the next poll
        self.echo(f"eraser: {child.name} exited ({child.process.returncode}); restarting it")
        replacement = self._popen(child.arguments, settings, child.pass_fds, child.name)
        child.process = replacement
        child.restarts += 1
        child.started_at = time.monotonic()

    def stop(self) -> None:
        """API first (no new jobs), then the worker: warm shutdown, then SIGKILL."""
        for name in ("api", "worker"):
            for child in self._children:
                if child.name != name or not child.running():
                    continue
                # The main process only: Celery stops its pool children itself, and logs an
                # ERROR for every child a signal reached first (a clean stop must not read so).
                child.signal(signal.SIGTERM, group=False)
                if child.wait(self.shutdown_grace_seconds):
                    continue
                # No cold shutdown (SIGQUIT) for the solo worker: Celery's would try to cancel
                # the running task through the pool, which `solo` cannot, and raise inside the
                # job (failing it). SIGKILL interrupts it cleanly: it resumes from its checkpoint.
                child.signal(signal.SIGKILL)
                child.wait(_SIGNAL_WAIT_SECONDS)
        self._children.clear()
        self.echo("eraser: stopped")

    def _start(self, settings: Settings) -> None:
        self._listener = self._bind()
        worker = [
            "-m", "celery", "-A", "worker.celery_app", "--quiet", "worker",  # quiet: no banner
            f"--loglevel={self.log_level.upper()}", "-n", "local@%h", "-Q", settings.queue_name,
            "--pool", "solo",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        api = [
            "-m", "uvicorn", "--factory", "api.app:create_app",
            "--fd", str(self._listener.fileno()), "--log-level", self.log_level,
        ]  # fmt: skip
        self._spawn("worker", worker, settings)
        self._spawn("api", api, settings, pass_fds=(self._listener.fileno(),))

    def _bind(self) -> socket.socket:
        """The API's listening socket, bound by this process: a port someone else holds fails
        here, before anything starts, and the health check can only reach our own API."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            raise click.ClickException(
                f"cannot listen on {self.host}:{self.port}: {error.strerror} "
                "(another eraser serve, or another program, holds it)"
            ) from error
        listener.listen(2048)
        listener.set_inheritable(True)
        return listener

    def _spawn(
        self,
        name: str,
        arguments: Sequence[str],
        settings: Settings,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        process = self._popen(arguments, settings, pass_fds, name)
        self._children.append(_Child(name, process, arguments, pass_fds))

    def _popen(
        self, arguments: Sequence[str], settings: Settings, pass_fds: tuple[int, ...], name: str
    ) -> subprocess.Popen[bytes]:
        # The worker gets SIGKILL if this supervisor dies (a job resumes from its checkpoint);
        # the API SIGTERM (it has nothing to lose).
        death_signal = signal.SIGKILL if name == "worker" else signal.SIGTERM
        return subprocess.Popen(
            [sys.executable, *arguments],
            cwd=settings.resolved_data_dir,
            env=self.environment,
            # Own process group: Ctrl-C reaches this supervisor only, which stops the children
            # in order (API before worker) instead of all at once.
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=_die_with_parent(os.getpid(), death_signal),
        )

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + _API_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self._stopping.is_set():
            if not all(child.running() for child in self._children):
                raise click.ClickException("a child process exited during start-up")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(_POLL_SECONDS)
        if not self._stopping.is_set():
            raise click.ClickException(f"the API did not answer on {self.base_url}")


def _die_with_parent(parent: int, number: signal.Signals) -> Callable[[], None]:
    """Runs in the child between fork and exec: ask the kernel to send `number` when the parent
    dies (Linux), and give up at once if it already died in between."""

    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(number), 0, 0, 0)
        except (OSError, AttributeError):
            return  # not Linux: the supervisor's own stop() is all there is
        if os.getppid() != parent:
            os._exit(1)

    return arm


def local_environment(data_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a local-profile process (for scripts that talk to `eraser serve`)."""
    return {
        **QUIET_ENVIRONMENT,  # library advice and loading bars off, unless the caller set them
        **(base if base is not None else os.environ),
        "ERASER_PROFILE": Profile.LOCAL.value,
        "ERASER_DATA_DIR": str(data_dir.resolve()),
    }


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the API.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port of the API.")
@click.option(
    "--shutdown-grace",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds a running job gets to finish on Ctrl-C before it is interrupted "
    "(it resumes from its last checkpoint on the next start).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level of the API and the worker.",
)
def serve(host: str, port: int, shutdown_grace: float, log_level: str) -> None:
    """Run the API and one worker on this machine (SQLite, filesystem broker, data in
    ERASER_DATA_DIR, default ./var) until Ctrl-C."""
    data_dir = Settings(profile=Profile.LOCAL).resolved_data_dir  # ERASER_DATA_DIR or ./var
    stack = LocalStack(
        host, port, data_dir, shutdown_grace_seconds=shutdown_grace, log_level=log_level
    )
    sys.exit(stack.run())
