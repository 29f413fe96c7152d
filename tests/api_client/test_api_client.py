"""The Python client against a real `eraser serve`: a retried create makes one job, a dropped
event stream resumes with Last-Event-ID, an interrupted download resumes with Range and verifies,
429/503 are retried after Retry-After, pages are followed, problems become exceptions."""

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import CliRun
from fast_job import FAST_HYPERPARAMETERS, PUBLISHED_ARTIFACTS
from faults import FaultyTransport, path_endswith, path_is
from local_server import LocalServer
from rich.console import Console

from client import ConnectionFailed, EraserClient, Event, Job, JobStatus, ProblemError
from client.progress import JobProgress

UNET = "unet/diffusion_pytorch_model.safetensors"


def fast_spec(**overrides: Any) -> dict[str, Any]:
    return {
        "model": "demo",
        "concepts": ["ring"],
        "hyperparameters": FAST_HYPERPARAMETERS,
        "sample_prompts": ["a green ring", "a blue square"],
        "evaluation": {"enabled": False},  # the client's tests; the stage has its own
        **overrides,
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(
    server: LocalServer, api_key: str, cli_run: CliRun
) -> Iterator[tuple[Job, list[Event], FaultyTransport]]:
    """The CLI's job, followed live through an event stream that drops; and, while the worker
    trains it, a create whose response is lost (that job waits in the queue and is cancelled)."""
    faults = FaultyTransport()
    faults.lose_response(path_is("POST", "/v1/jobs"))
    # The first event stream dies after its first few hundred bytes (one or two events).
    faults.cut_stream(path_endswith("GET", "/events"), after_bytes=400)
    seen: list[Event] = []
    with EraserClient(server.url, api_key, transport=faults, backoff_seconds=0.05) as eraser:
        retried = eraser.create_job(fast_spec(metadata={"test": "client"}))
        eraser.cancel(retried)
        final = eraser.wait(cli_run.job_id, on_event=seen.append, timeout=300)
    yield final, seen, faults


def test_a_create_whose_response_was_lost_is_retried_into_the_same_job(
    server: LocalServer, api_key: str, finished: tuple[Job, list[Event], FaultyTransport]
) -> None:
    _, _, faults = finished
    creates = [r for r in faults.requests if r.method == "POST" and r.url.path == "/v1/jobs"]
    assert len(creates) == 2  # the lost one and its retry
    assert creates[0].headers["Idempotency-Key"] == creates[1].headers["Idempotency-Key"]
    with EraserClient(server.url, api_key) as eraser:
        mine = [j for j in eraser.jobs() if j.metadata.get("test") == "client"]
    assert len(mine) == 1


def test_wait_resumes_a_dropped_event_stream_without_losing_or_repeating_events(
    server: LocalServer, api_key: str, finished: tuple[Job, list[Event], FaultyTransport]
) -> None:
    job, seen, faults = finished
    assert job.status == JobStatus.SUCCEEDED
    streams = [r for r in faults.requests if r.url.path.endswith("/events")]
    assert len(streams) >= 2, "the stream was never cut"
    resumed_from = int(streams[1].headers["Last-Event-ID"])
    assert resumed_from > 0, "the reconnect did not say where it stopped"
    with EraserClient(server.url, api_key) as eraser:
        log = eraser.events(job).items
    assert [e.id for e in seen] == [e.id for e in log]  # every event once, in order
    assert seen[-1].kind == "succeeded"
    assert any(e.kind == "progress" and e.id > resumed_from for e in seen)


def test_an_interrupted_download_resumes_with_range_and_verifies(
    server: LocalServer,
    api_key: str,
    finished: tuple[Job, list[Event], FaultyTransport],
    tmp_path: Path,
) -> None:
    job = finished[0]
    with EraserClient(server.url, api_key) as eraser:
        manifest = {artifact.name: artifact for artifact in eraser.artifacts(job)}
    assert set(manifest) == PUBLISHED_ARTIFACTS
    half = manifest[UNET].bytes // 2

    cut = FaultyTransport()
    cut.cut_stream(path_endswith("GET", UNET), after_bytes=half)
    with (
        EraserClient(server.url, api_key, transport=cut, max_retries=0) as eraser,
        pytest.raises(ConnectionFailed),
    ):
        eraser.download(job, tmp_path, names=[UNET])
    part = tmp_path / (UNET + ".part")
    assert part.stat().st_size == half
    assert not (tmp_path / UNET).exists()

    # A later run (another process would do the same) picks the half file up.
    recorder = FaultyTransport()
    with EraserClient(server.url, api_key, transport=recorder) as eraser:
        paths = eraser.download(job, tmp_path)
    ranged = [r for r in recorder.requests if r.url.path.endswith(UNET)]
    assert [r.headers.get("Range") for r in ranged] == [f"bytes={half}-"]
    assert recorder.statuses[recorder.requests.index(ranged[0])] == 206
    assert not part.exists()
    assert {p.relative_to(tmp_path).as_posix() for p in paths} == set(manifest)
    for name, artifact in manifest.items():
        assert sha256(tmp_path / name) == artifact.sha256, name


def test_a_corrupt_partial_file_is_detected_and_downloaded_afresh(
    server: LocalServer,
    api_key: str,
    finished: tuple[Job, list[Event], FaultyTransport],
    tmp_path: Path,
) -> None:
    job = finished[0]
    (tmp_path / "delta.safetensors.part").write_bytes(b"not the real first bytes" * 100)
    recorder = FaultyTransport()
    with EraserClient(server.url, api_key, transport=recorder) as eraser:
        [path] = eraser.download(job, tmp_path, names=["delta.safetensors"])
        expected = {a.name: a.sha256 for a in eraser.artifacts(job)}["delta.safetensors"]
    assert sha256(path) == expected
    ranges = [
        r.headers.get("Range")
        for r in recorder.requests
        if r.url.path.endswith("delta.safetensors")
    ]
    assert ranges == ["bytes=2400-", None]  # resumed, failed verification, fetched whole


@pytest.mark.parametrize("status", [429, 503])
def test_overload_answers_are_retried_after_retry_after(
    server: LocalServer,
    api_key: str,
    finished: tuple[Job, list[Event], FaultyTransport],
    status: int,
) -> None:
    job = finished[0]
    faults = FaultyTransport()
    faults.answer_first(path_is("GET", f"/v1/jobs/{job.id}"), status, retry_after=2)
    slept: list[float] = []
    with EraserClient(server.url, api_key, transport=faults, sleep=slept.append) as eraser:
        assert eraser.job(job.id).status == JobStatus.SUCCEEDED
    assert slept == [2.0]
    assert faults.statuses == [status, 200]


def test_an_unreachable_api_raises_connection_failed_after_backing_off() -> None:
    slept: list[float] = []
    nowhere = EraserClient("http://127.0.0.1:9", "ek_x", max_retries=3, sleep=slept.append)
    with nowhere, pytest.raises(ConnectionFailed):
        nowhere.models()
    assert len(slept) == 3 and slept[0] < slept[-1]


def test_a_refused_request_raises_the_problem_with_its_fields(
    server: LocalServer, api_key: str
) -> None:
    with EraserClient(server.url, api_key) as eraser, pytest.raises(ProblemError) as refused:
        eraser.create_job(fast_spec(concepts=[], hyperparameters={"iterations": 0}))
    problem = refused.value
    assert problem.status == 422
    assert problem.slug == "validation-error"
    assert problem.title
    assert {error.field for error in problem.errors} == {"concepts", "hyperparameters.iterations"}
    with EraserClient(server.url, "ek_not-a-key") as eraser, pytest.raises(ProblemError) as denied:
        eraser.models()
    assert denied.value.status == 401


def test_jobs_follows_pages_and_filters(
    server: LocalServer, api_key: str, finished: tuple[Job, list[Event], FaultyTransport]
) -> None:
    recorder = FaultyTransport()
    with EraserClient(server.url, api_key, transport=recorder) as eraser:
        whole = eraser.jobs_page(limit=100)
        assert not whole.has_more and len(whole.items) >= 2  # the CLI's job, the retried one
        paged = list(eraser.jobs(page_size=1))
        pages = [r for r in recorder.requests if r.url.path == "/v1/jobs"]
        assert [job.id for job in paged] == [job.id for job in whole.items]
        assert len(pages) == 1 + len(whole.items)  # one per page, then the filtered ones below
        created = [job.created_at for job in paged]
        assert created == sorted(created, reverse=True)
        succeeded = [job.id for job in eraser.jobs(status=["succeeded"])]
        assert finished[0].id in succeeded
        assert all(job.status == "succeeded" for job in eraser.jobs(status=["succeeded"]))
        assert list(eraser.jobs(method="esd")) == []


def test_the_terminal_progress_bar_shows_step_stage_loss_and_eta(
    server: LocalServer, api_key: str, finished: tuple[Job, list[Event], FaultyTransport]
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    with EraserClient(server.url, api_key) as eraser:
        events = eraser.events(finished[0]).items
    with JobProgress(finished[0].id, console) as display:
        for event in events:
            display.on_event(event)
    drawn = screen.getvalue()
    total = FAST_HYPERPARAMETERS["iterations"]
    assert f"{total}/{total} steps 100%" in drawn
    assert "loss " in drawn and "ETA " in drawn
    assert "succeeded" in drawn


def test_off_a_terminal_a_real_jobs_log_ends_with_the_last_step_and_the_outcome(
    server: LocalServer, api_key: str, finished: tuple[Job, list[Event], FaultyTransport]
) -> None:
    """What `eraser jobs submit --wait` writes into a CI log, from a real job's events: the bar
    as lines (a tenth at most apart, never more than the events), the last step at 100 % with
    ETA 0:00, each state once, the outcome last. (The bound on a long job's log, with far more
    events than a 20-update job sends: tests/api_client/test_progress_log.py.)"""
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=80)
    with EraserClient(server.url, api_key) as eraser:
        events = eraser.events(finished[0]).items
    total = FAST_HYPERPARAMETERS["iterations"]
    sent = sum(event.kind == "progress" for event in events)
    with JobProgress(finished[0].id, console) as display:
        for event in events:
            display.on_event(event)
    lines = log.getvalue().splitlines()
    bars = [line for line in lines if line.startswith("training ") and "%" in line]
    assert 2 <= len(bars) <= min(sent, 11), lines
    assert f"] {total}/{total} 100%" in bars[-1] and "ETA 0:00" in bars[-1], bars
    assert lines[-1] == "succeeded", lines
    states = [line for line in lines if line not in bars]
    assert len(states) == len(set(states)), lines  # a checkpoint is not news in a log
