"""Job events as a JSON page and as Server-Sent Events, resumable with Last-Event-ID."""

import json
import threading
import time

import httpx
from sqlalchemy.orm import Session, sessionmaker

from core.jobs.events import add_event
from core.jobs.states import JobStatus, transition

BODY = {"model": "demo", "concepts": ["ring"]}
SSE = {"Accept": "text/event-stream"}


def _read_stream(client: httpx.Client, path: str, headers: dict[str, str]) -> list[dict]:
    """Every SSE event until the server closes the stream."""
    events: list[dict] = []
    current: dict = {}
    with client.stream("GET", path, headers={**SSE, **headers}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                current[field] = value.lstrip(" ")
    return events


def _run_to_success(session: Session, job_id: str) -> None:
    transition(session, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED})
    add_event(session, job_id, "claimed", {"worker": "w1"})
    add_event(session, job_id, "progress", {"step": 1, "total": 2, "losses": {"erase": 0.1}})
    transition(session, job_id, JobStatus.SUCCEEDED, from_={JobStatus.RUNNING})
    add_event(session, job_id, "succeeded", {})
    session.commit()


def test_json_events_page_from_an_id(alice: httpx.Client, db_session: Session) -> None:
    job_id = alice.post("/v1/jobs", json=BODY).json()["id"]
    _run_to_success(db_session, job_id)

    everything = alice.get(f"/v1/jobs/{job_id}/events").json()
    after_second = alice.get(
        f"/v1/jobs/{job_id}/events", params={"after": everything["items"][1]["id"]}
    ).json()

    kinds = [event["kind"] for event in everything["items"]]
    assert kinds == ["created", "enqueued", "claimed", "progress", "succeeded"]
    assert everything["finished"] is True
    assert [e["kind"] for e in after_second["items"]] == ["claimed", "progress", "succeeded"]


def test_sse_resumes_after_last_event_id_and_ends_after_the_final_event(
    alice: httpx.Client, db_session: Session
) -> None:
    job_id = alice.post("/v1/jobs", json=BODY).json()["id"]
    _run_to_success(db_session, job_id)
    path = f"/v1/jobs/{job_id}/events"

    full = _read_stream(alice, path, {})
    resumed = _read_stream(alice, path, {"Last-Event-ID": full[1]["id"]})

    assert [event["event"] for event in full] == [
        "created",
        "enqueued",
        "claimed",
        "progress",
        "succeeded",
    ]
    assert [event["id"] for event in resumed] == [event["id"] for event in full[2:]]
    progress = json.loads(full[3]["data"])
    assert progress["data"] == {"step": 1, "total": 2, "losses": {"erase": 0.1}}


def test_sse_delivers_events_written_while_the_client_listens(
    alice: httpx.Client, session_factory: sessionmaker[Session]
) -> None:
    job_id = alice.post("/v1/jobs", json=BODY).json()["id"]

    finished_writing: list[float] = []

    def worker() -> None:
        time.sleep(0.5)
        with session_factory() as session:
            _run_to_success(session, job_id)
        finished_writing.append(time.monotonic())

    writer = threading.Thread(target=worker)
    writer.start()
    events = _read_stream(alice, f"/v1/jobs/{job_id}/events", {})
    received = time.monotonic()
    writer.join()

    assert [event["event"] for event in events][-1] == "succeeded"
    assert len(events) == 5
    # Live: the last event reaches the listener a poll interval after it is committed, not at
    # the next keep-alive (15 s) nor at the end of some timeout. Measured from the commit, so a
    # loaded machine's slow writes do not count against the stream.
    assert received - finished_writing[0] < 5


def test_sse_of_a_cancelled_job_ends(alice: httpx.Client) -> None:
    job_id = alice.post("/v1/jobs", json=BODY).json()["id"]
    alice.post(f"/v1/jobs/{job_id}/cancel")

    events = _read_stream(alice, f"/v1/jobs/{job_id}/events", {})

    assert events[-1]["event"] == "cancelled"
