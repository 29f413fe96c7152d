"""The polling read path (GET job, GET list) over real HTTP on Postgres: it answers exactly what
the ORM view of the same jobs says, in as few statements as the read needs, and in the same
order of errors as every other route (401 before anything else)."""

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from core.jobs.models import Job
from core.jobs.schemas import JobView
from core.jobs.states import JobStatus, transition

BODY = {"model": "demo", "concepts": ["ring"]}


def _create(client: httpx.Client, **overrides: object) -> str:
    response = client.post("/v1/jobs", json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _jobs_in_every_shape(alice: httpx.Client, db_session: Session) -> list[str]:
    """Queued; running with progress and an ETA; failed with an error; succeeded with a result
    holding nested values; progress with a null (diverged) loss; every request field set."""
    queued = _create(alice)
    full = _create(
        alice,
        method="esd",
        hyperparameters={"iterations": 50, "lr": 2e-5},
        seed=2**63 - 1,
        sample_prompts=["a red ring", "café au lait"],
        metadata={"ticket": "SAFE-1", "note": "ünïcode"},
    )
    running, failed, succeeded = (_create(alice) for _ in range(3))
    for job_id in (running, failed, succeeded):
        transition(db_session, job_id, JobStatus.RUNNING, from_={JobStatus.QUEUED})
    created = db_session.get(Job, running)
    assert created is not None
    db_session.execute(
        update(Job)
        .where(Job.id == running)
        .values(
            progress_step=30,
            progress_total=100,
            progress_losses={"esd": 0.25, "preservation": None},
            progress_stage="training",
            attempt_started_at=created.created_at,
            attempt_start_step=10,
            updated_at=created.created_at + timedelta(seconds=40),
        )
    )
    transition(
        db_session,
        failed,
        JobStatus.FAILED,
        from_={JobStatus.RUNNING},
        error_code="diverged",
        error_message="loss esd was nan at step 3",
    )
    transition(
        db_session,
        succeeded,
        JobStatus.SUCCEEDED,
        from_={JobStatus.RUNNING},
        result={"steps_completed": 100, "score": None, "nested": [1.5, {"a": "b"}]},
        progress_step=100,
        progress_total=100,
    )
    db_session.commit()
    return [queued, full, running, failed, succeeded]


def _orm_view(db_session: Session, job_id: str) -> JobView:
    db_session.expire_all()
    job = db_session.get(Job, job_id)
    assert job is not None
    return JobView.of(job)


def test_get_and_list_answer_exactly_what_the_orm_view_of_the_job_says(
    alice: httpx.Client, db_session: Session
) -> None:
    ids = _jobs_in_every_shape(alice, db_session)

    for job_id in ids:
        response = alice.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200
        assert response.content == _orm_view(db_session, job_id).model_dump_json().encode()

    page = alice.get("/v1/jobs", params={"limit": 3})
    rest = alice.get("/v1/jobs", params={"limit": 3, "after": page.json()["next_cursor"]})
    items = page.json()["items"] + rest.json()["items"]
    assert [item["id"] for item in items] == list(reversed(ids))
    assert rest.json()["has_more"] is False
    for item in items:
        assert item == json.loads(_orm_view(db_session, item["id"]).model_dump_json())


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL statements executed in this process (the API server runs in a thread of it)."""
    executed: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        executed.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_a_job_read_is_one_statement_and_a_page_two(
    alice: httpx.Client, statements: list[str]
) -> None:
    job_id = _create(alice)
    alice.get(f"/v1/jobs/{job_id}")  # the key's first use writes last_used_at (once a minute)

    statements.clear()
    assert alice.get(f"/v1/jobs/{job_id}").status_code == 200
    # The key and the job together: one SELECT, no separate key lookup, no write.
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("SELECT")

    statements.clear()
    assert alice.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert len(statements) == 1, statements

    statements.clear()
    assert alice.get("/v1/jobs").status_code == 200
    assert len(statements) == 2, statements  # the key, then the page
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements)


def test_an_unknown_key_is_told_401_before_anything_about_its_request(
    alice: httpx.Client, http: httpx.Client
) -> None:
    job_id = _create(alice)
    forged = {"Authorization": "Bearer ek_" + "x" * 43}
    for headers in (forged, {}):
        for path in (
            f"/v1/jobs/{job_id}",
            "/v1/jobs/not-a-uuid",
            f"/v1/jobs/{uuid.uuid4()}",
            "/v1/jobs?limit=0",
            "/v1/jobs?limit=100000",
            "/v1/jobs?status=bogus",
            "/v1/jobs?created_after=yesterday",
            "/v1/jobs?after=not-a-cursor",
        ):
            response = http.get(path, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == 'Bearer realm="eraser"'

    # With a live key, the same requests get their own answers.
    assert alice.get("/v1/jobs/not-a-uuid").status_code == 404
    assert alice.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    for query in ("limit=0", "limit=100000", "status=bogus", "created_after=yesterday"):
        assert alice.get(f"/v1/jobs?{query}").status_code == 422, query
    assert alice.get("/v1/jobs?after=not-a-cursor").status_code == 422


def test_another_principals_job_reads_as_missing(alice: httpx.Client, bob: httpx.Client) -> None:
    job_id = _create(alice)
    missing = bob.get(f"/v1/jobs/{job_id}")
    absent = bob.get(f"/v1/jobs/{uuid.uuid4()}")
    assert missing.status_code == absent.status_code == 404
    assert missing.json()["type"] == absent.json()["type"]
    assert bob.get("/v1/jobs").json()["items"] == []


def test_a_changed_job_is_never_served_from_the_view_cache(
    alice: httpx.Client, db_session: Session
) -> None:
    """The API keeps rendered views by stored row: a change of any shown column must show at the
    next read, even one written without moving updated_at (the cache does not trust writers to)."""
    job_id = _create(alice)
    before = alice.get(f"/v1/jobs/{job_id}")
    listed = alice.get("/v1/jobs").json()["items"][0]
    assert before.json()["metadata"] == listed["metadata"] == {}
    stamp = db_session.get(Job, job_id)
    assert stamp is not None
    db_session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(metadata_={"ticket": "SAFE-2"}, progress_losses={"esd": 0.5})
        .values(updated_at=stamp.updated_at)
    )
    db_session.commit()

    after = alice.get(f"/v1/jobs/{job_id}")
    assert after.json()["metadata"] == {"ticket": "SAFE-2"}
    assert after.json()["updated_at"] == before.json()["updated_at"]
    assert after.headers["etag"] != before.headers["etag"]
    assert alice.get("/v1/jobs").json()["items"][0]["metadata"] == {"ticket": "SAFE-2"}
    # Unchanged, it reads the same bytes again (and the same ETag: a 304 for If-None-Match).
    again = alice.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": after.headers["etag"]})
    assert again.status_code == 304
