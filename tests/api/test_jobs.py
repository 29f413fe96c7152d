"""Create, read (ETag), list (filters, cursor pagination) and cancel over real HTTP."""

import httpx
from sqlalchemy.orm import Session

from core.jobs.models import Job, JobEvent
from core.jobs.states import JobStatus, transition

BODY = {"model": "demo", "concepts": ["ring"]}


def _create(client: httpx.Client, **overrides: object) -> dict:
    response = client.post("/v1/jobs", json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    return response.json()


def test_create_returns_202_location_and_the_queued_job(
    alice: httpx.Client, db_session: Session
) -> None:
    response = alice.post(
        "/v1/jobs",
        json={
            "model": "demo",
            "concepts": [" Red Ring "],
            "method": "esd",
            "hyperparameters": {"iterations": 50, "lr": 2e-5},
            "seed": 7,
            "sample_prompts": ["a starry night"],
            "metadata": {"ticket": "SAFE-1"},
        },
    )

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["concepts"] == ["Red Ring"]
    assert job["method"] == "esd"
    # only what the caller set is stored: the engine fills the other defaults
    assert job["hyperparameters"] == {"iterations": 50, "lr": 2e-5}
    assert job["metadata"] == {"ticket": "SAFE-1"}
    events = db_session.query(JobEvent).filter_by(job_id=job["id"]).order_by(JobEvent.id).all()
    assert [event.kind for event in events] == ["created", "enqueued"]


def test_get_answers_304_while_unchanged_and_a_new_etag_after_a_change(
    alice: httpx.Client, db_session: Session
) -> None:
    job = _create(alice)
    first = alice.get(f"/v1/jobs/{job['id']}")
    assert first.status_code == 200
    etag = first.headers["etag"]

    unchanged = alice.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    for header in (f'"other", W/{etag}', "*"):
        assert (
            alice.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": header}).status_code == 304
        )

    transition(db_session, job["id"], JobStatus.RUNNING, from_={JobStatus.QUEUED})
    db_session.commit()
    changed = alice.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["status"] == "running"
    assert changed.headers["etag"] != etag


def test_progress_reports_step_total_and_eta(alice: httpx.Client, db_session: Session) -> None:
    job = _create(alice)
    job_row = db_session.get(Job, job["id"])
    assert job_row is not None
    started = job_row.created_at
    transition(
        db_session,
        job["id"],
        JobStatus.RUNNING,
        from_={JobStatus.QUEUED},
        started_at=started,
        attempt_started_at=started,  # a first attempt, from scratch
        attempt_start_step=0,
        progress_step=25,
        progress_total=100,
        progress_losses={"erase": 0.5},
    )
    db_session.commit()
    db_session.refresh(job_row)

    progress = alice.get(f"/v1/jobs/{job['id']}").json()["progress"]

    elapsed = (job_row.updated_at - started).total_seconds()
    assert progress["step"] == 25 and progress["total"] == 100
    assert progress["fraction"] == 0.25
    assert progress["losses"] == {"erase": 0.5}
    assert abs(progress["eta_seconds"] - elapsed * 3) < 1e-3


def test_list_pages_newest_first_without_gaps_or_repeats(alice: httpx.Client) -> None:
    created = [_create(alice, seed=index)["id"] for index in range(5)]

    seen: list[str] = []
    page = alice.get("/v1/jobs", params={"limit": 2}).json()
    while True:
        seen += [item["id"] for item in page["items"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        page = alice.get("/v1/jobs", params={"limit": 2, "after": page["next_cursor"]}).json()

    assert seen == list(reversed(created))


def test_list_filters_by_status_and_method(alice: httpx.Client) -> None:
    queued = _create(alice)
    cancelled = _create(alice, method="esd")
    assert alice.post(f"/v1/jobs/{cancelled['id']}/cancel").status_code == 200

    by_status = alice.get("/v1/jobs", params={"status": "cancelled"}).json()
    by_method = alice.get("/v1/jobs", params={"method": "ap"}).json()
    both = alice.get("/v1/jobs", params=[("status", "queued"), ("status", "cancelled")]).json()

    assert [item["id"] for item in by_status["items"]] == [cancelled["id"]]
    assert [item["id"] for item in by_method["items"]] == [queued["id"]]
    assert {item["id"] for item in both["items"]} == {queued["id"], cancelled["id"]}


def test_cancel_while_queued_ends_the_job_cancelled_and_is_idempotent(
    alice: httpx.Client,
) -> None:
    job = _create(alice)

    first = alice.post(f"/v1/jobs/{job['id']}/cancel")
    again = alice.post(f"/v1/jobs/{job['id']}/cancel")

    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert first.json()["finished_at"] is not None
    events = alice.get(f"/v1/jobs/{job['id']}/events").json()
    assert [event["kind"] for event in events["items"]] == ["created", "enqueued", "cancelled"]
    assert events["finished"] is True


def test_cancel_while_running_asks_the_worker_to_stop(
    alice: httpx.Client, db_session: Session
) -> None:
    job = _create(alice)
    transition(db_session, job["id"], JobStatus.RUNNING, from_={JobStatus.QUEUED})
    db_session.commit()

    response = alice.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    assert response.json()["cancel_requested"] is True
    kinds = [e["kind"] for e in alice.get(f"/v1/jobs/{job['id']}/events").json()["items"]]
    assert kinds[-1] == "cancel_requested"


def test_cancel_of_a_finished_job_is_a_409_problem(
    alice: httpx.Client, db_session: Session
) -> None:
    job = _create(alice)
    transition(db_session, job["id"], JobStatus.RUNNING, from_={JobStatus.QUEUED})
    transition(db_session, job["id"], JobStatus.SUCCEEDED, from_={JobStatus.RUNNING})
    db_session.commit()

    response = alice.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/job-finished"
    assert alice.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"


def test_registered_models_include_the_demo(alice: httpx.Client) -> None:
    models = alice.get("/v1/models").json()["items"]
    assert "demo" in [model["name"] for model in models]


def test_list_filters_by_creation_time(alice: httpx.Client) -> None:
    older = _create(alice)
    newer = _create(alice)
    boundary = newer["created_at"]

    before = alice.get("/v1/jobs", params={"created_before": boundary}).json()
    since = alice.get("/v1/jobs", params={"created_after": boundary}).json()
    naive = alice.get("/v1/jobs", params={"created_after": "2026-01-01T00:00:00"})

    assert [item["id"] for item in before["items"]] == [older["id"]]
    assert [item["id"] for item in since["items"]] == [newer["id"]]
    assert naive.status_code == 422
    assert ["query", "created_after"] in [error["loc"] for error in naive.json()["errors"]]
