"""`eraser jobs ...` as a user runs it (a subprocess, configured by ERASER_API_URL and
ERASER_API_KEY) against a real `eraser serve`: progress while waiting, downloads that verify, and
exit codes a script can act on."""

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from cli_support import CliRun, jobs_cli
from fast_job import FAST_HYPERPARAMETERS, PUBLISHED_ARTIFACTS
from local_server import LocalServer

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


def test_submit_wait_download_shows_progress_and_exits_0_and_cancel_exits_3(
    server: LocalServer, api_key: str, cli_run: CliRun
) -> None:
    assert cli_run.cancel.returncode == EXIT_OK, cli_run.cancel.stderr
    waited = jobs_cli(server, api_key, "wait", cli_run.cancelled_id, "--json")
    assert waited.returncode == EXIT_CANCELLED
    assert json.loads(waited.stdout)["status"] == "cancelled"

    _, stderr = cli_run.process.communicate(timeout=300)
    assert cli_run.process.returncode == EXIT_OK, cli_run.stderr_head + stderr
    total = FAST_HYPERPARAMETERS["iterations"]
    # Off a terminal (a pipe here, a CI log elsewhere): the bar as plain lines, a tenth at most
    # apart, not one per update.
    progress = [
        line for line in stderr.splitlines() if line.startswith("training ") and "%" in line
    ]
    assert len(progress) >= 2, stderr  # more than the last line: it moved while we waited
    assert len(progress) < total, stderr
    assert f"] {total}/{total} 100%" in progress[-1]
    assert "loss " in progress[-1] and "ETA 0:00" in progress[-1]
    assert f"job {cli_run.job_id} succeeded" in stderr

    with EraserClient(server.url, api_key) as eraser:
        manifest = eraser.artifacts(cli_run.job_id)
    assert {artifact.name for artifact in manifest} == PUBLISHED_ARTIFACTS
    for artifact in manifest:
        digest = hashlib.sha256((cli_run.out / artifact.name).read_bytes()).hexdigest()
        assert digest == artifact.sha256

    shown = jobs_cli(server, api_key, "get", cli_run.job_id, "--json")
    assert json.loads(shown.stdout)["status"] == "succeeded"
    listed = jobs_cli(server, api_key, "list", "--status", "succeeded", "--json")
    assert cli_run.job_id in {item["id"] for item in json.loads(listed.stdout)}


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
