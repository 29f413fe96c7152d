"""What the CLI tests and their fixtures share (a uniquely named module: tests are not a
package)."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fast_job import FAST_HYPERPARAMETERS
from local_server import ERASER, LocalServer

HP = [flag for key, value in FAST_HYPERPARAMETERS.items() for flag in ("--hp", f"{key}={value}")]


def cli_environment(server: LocalServer, key: str | None, url: str | None = None) -> dict[str, str]:
    environment = dict(server.environment)
    environment["ERASER_API_URL"] = url or server.url
    if key is not None:
        environment["ERASER_API_KEY"] = key
    return environment


@dataclass
class CliRun:
    process: subprocess.Popen[str]
    job_id: str
    out: Path
    stderr_head: str
    # A second job, submitted and cancelled by the CLI while the first one trains.
    cancelled_id: str
    cancel: subprocess.CompletedProcess[str]


def jobs_cli(
    server: LocalServer, key: str | None, *arguments: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ERASER, "jobs", *arguments],
        env=cli_environment(server, key, url),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
