"""The client and CLI tests run against the session's real `eraser serve` (tests/local_server.py)
and share one real job: `eraser jobs submit --wait --download`, started once in the background.
While the worker trains it, the other tests' jobs wait in the queue, so cancelling them costs the
worker nothing, and the Python client follows the same job live."""

import subprocess
from collections.abc import Iterator

import pytest
from cli_support import HP, CliRun, cli_environment, jobs_cli
from local_server import ERASER, LocalServer


@pytest.fixture(scope="session")
def server(local_server: LocalServer) -> LocalServer:
    return local_server


@pytest.fixture(scope="session")
def api_key(server: LocalServer) -> str:
    return server.issue_key("client-tests")


@pytest.fixture(scope="session")
def cli_run(
    server: LocalServer, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliRun]:
    out = tmp_path_factory.mktemp("cli-download") / "out"
    # the client's tests, not the evaluation stage's (tests/e2e has those): a job body that skips
    # it keeps the job short and its end a plain success
    body = out.parent / "job.json"
    body.write_text('{"evaluation": {"enabled": false}}')
    process = subprocess.Popen(
        [ERASER, "jobs", "submit", "-f", str(body), "-c", "ring", *HP, "-p", "a green ring",
         "--meta", "test=cli", "--wait", "--download", str(out)],
        env=cli_environment(server, api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    head = process.stderr.readline()  # "submitted job <id> (...)"
    assert head.startswith("submitted job "), head
    try:
        # While the worker is busy with that job, a second one waits in the queue: cancel it
        # there, before the worker spends anything on it.
        second = jobs_cli(server, api_key, "submit", "-c", "ring", *HP)
        assert second.returncode == 0, second.stderr
        cancel = jobs_cli(server, api_key, "cancel", second.stdout.strip())
        yield CliRun(process, head.split()[2], out, head, second.stdout.strip(), cancel)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
