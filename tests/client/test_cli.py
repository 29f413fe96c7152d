"""`eraser jobs ...` as a user runs it (a subprocess, configured by ERASER_API_URL and
ERASER_API_KEY) against a real `eraser serve`: progress while waiting, downloads that verify, and
exit codes a script can act on."""

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fast_job import FAST_HYPERPARAMETERS, PUBLISHED_ARTIFACTS
from local_server import ERASER, LocalServer

from client import EraserClient, Job
from client.cli import (
    EXIT_ACCEPTANCE_FAILED,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    exit_code_of,
)

HP = [flag for key, value in FAST_HYPERPARAMETERS.items() for flag in ("--hp", f"{key}={value}")]


def cli_environment(server: LocalServer, key: str | None, url: str | None = None) -> dict[str, str]:
    environment = dict(server.environment)
    environment["ERASER_API_URL"] = url or server.url
    if key is not None:
        environment["ERASER_API_KEY"] = key
    return environment


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


def test_submit_wait_download_shows_progress_and_exits_0_and_cancel_exits_3(
    server: LocalServer, api_key: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    waiting = subprocess.Popen(
        [ERASER, "jobs", "submit", "-c", "ring", *HP, "-p", "a green ring", "--meta", "test=cli",
         "--wait", "--download", str(out)],
        env=cli_environment(server, api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # While the worker is busy with that job, a second one waits in the queue: cancel it.
        submitted = jobs_cli(server, api_key, "submit", "-c", "ring", *HP)
        assert submitted.returncode == EXIT_OK, submitted.stderr
        second = submitted.stdout.strip()
        assert jobs_cli(server, api_key, "cancel", second).returncode == EXIT_OK
        waited = jobs_cli(server, api_key, "wait", second, "--json")
        assert waited.returncode == EXIT_CANCELLED
        assert json.loads(waited.stdout)["status"] == "cancelled"

        _, stderr = waiting.communicate(timeout=240)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == EXIT_OK, stderr
    total = FAST_HYPERPARAMETERS["iterations"]
    progress = [line for line in stderr.splitlines() if " step " in line]
    assert len(progress) >= 2, stderr  # more than the last line: it moved while we waited
    assert f"step {total}/{total}" in progress[-1]
    assert "loss " in progress[-1] and "ETA " in progress[-1]
    assert "succeeded" in stderr

    with EraserClient(server.url, api_key) as eraser:
        [job] = [j for j in eraser.jobs() if j.metadata.get("test") == "cli"]
        manifest = eraser.artifacts(job)
    assert {artifact.name for artifact in manifest} == PUBLISHED_ARTIFACTS
    for artifact in manifest:
        digest = hashlib.sha256((out / artifact.name).read_bytes()).hexdigest()
        assert digest == artifact.sha256

    shown = jobs_cli(server, api_key, "get", job.id, "--json")
    assert json.loads(shown.stdout)["status"] == "succeeded"
    listed = jobs_cli(server, api_key, "list", "--status", "succeeded", "--json")
    assert job.id in {item["id"] for item in json.loads(listed.stdout)}


def test_a_bad_request_exits_non_zero_naming_the_problem_and_field(
    server: LocalServer, api_key: str
) -> None:
    result = jobs_cli(server, api_key, "submit", "-c", "ring", "--hp", "iterations=0")
    assert result.returncode == EXIT_REFUSED
    assert "422 Unprocessable" in result.stderr
    assert "hyperparameters.iterations" in result.stderr

    unknown = jobs_cli(server, api_key, "get", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == EXIT_REFUSED and "404 Not Found" in unknown.stderr


def test_missing_key_and_unreachable_api_have_their_own_exit_codes(server: LocalServer) -> None:
    no_key = jobs_cli(server, None, "list")
    assert no_key.returncode == 2 and "ERASER_API_KEY" in no_key.stderr
    nowhere = jobs_cli(server, "ek_x", "--retries", "0", "list", url="http://127.0.0.1:9")
    assert nowhere.returncode == EXIT_UNREACHABLE and "cannot reach" in nowhere.stderr


@pytest.mark.parametrize(
    ("status", "result", "code"),
    [
        ("succeeded", {"acceptance": "passed"}, EXIT_OK),
        ("succeeded", {"evaluation": {"acceptance": "failed"}}, EXIT_ACCEPTANCE_FAILED),
        ("failed", None, EXIT_FAILED),
        ("cancelled", None, EXIT_CANCELLED),
    ],
)
def test_exit_codes_tell_how_a_job_ended(status: str, result: dict | None, code: int) -> None:
    now = datetime.now(UTC)
    job = Job(
        id="j", status=status, model="demo", concepts=["ring"], method="ap",
        train_method="xattn", result=result, created_at=now, updated_at=now,
    )  # fmt: skip
    assert exit_code_of(job) == code


def test_the_client_and_its_cli_load_without_server_or_engine_modules() -> None:
    probe = (
        "import sys, client, client.cli, client.progress, core.cli\n"
        "core.cli.main.get_command(None, 'jobs')\n"
        "heavy = {'torch', 'sqlalchemy', 'fastapi', 'celery', 'diffusers', 'api', 'worker'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
