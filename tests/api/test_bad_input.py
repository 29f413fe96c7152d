"""Bad input is a 4xx problem+json that names the problem, never a 500, and leaves no job row."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.jobs.models import IdempotencyRecord, Job
from core.settings import Settings

VALID = {"model": "demo", "concepts": ["ring"]}


@pytest.fixture
def no_rows_left(db_session: Session) -> Iterator[None]:
    yield
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Job)) == 0
    assert db_session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("/problems/")
    return problem


def _locs(problem: dict[str, Any]) -> list[list[str | int]]:
    return [error["loc"] for error in problem["errors"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**VALID, "concepts": []}, ["body", "concepts"]),
        ({**VALID, "concepts": ["  "]}, ["body", "concepts"]),
        ({**VALID, "concepts": ["ring", "Ring"]}, ["body", "concepts"]),
        ({**VALID, "concepts": ["c\u0000t"]}, ["body", "concepts"]),
        ({**VALID, "sample_prompts": ["a\nb"]}, ["body", "sample_prompts"]),
        ({**VALID, "metadata": {"k": "\u001b[31m"}}, ["body", "metadata"]),
        ({**VALID, "concepts": ["x" * 201]}, ["body", "concepts", 0]),
        ({**VALID, "concepts": [f"c{i}" for i in range(9)]}, ["body", "concepts"]),
        ({**VALID, "model": "no-such-model"}, ["body", "model"]),
        ({**VALID, "model": "/etc/passwd"}, ["body", "model"]),
        ({**VALID, "method": "magic"}, ["body", "method"]),
        ({**VALID, "hyperparameters": {"lr": 5.0}}, ["body", "hyperparameters", "lr"]),
        ({**VALID, "hyperparameters": {"lr": -1}}, ["body", "hyperparameters", "lr"]),
        (
            {**VALID, "hyperparameters": {"iterations": 0}},
            ["body", "hyperparameters", "iterations"],
        ),
        (
            {**VALID, "hyperparameters": {"iterations": 10_001}},
            ["body", "hyperparameters", "iterations"],
        ),
        ({**VALID, "hyperparameters": {"bogus": 1}}, ["body", "hyperparameters", "bogus"]),
        ({**VALID, "sample_prompts": ["p"] * 17}, ["body", "sample_prompts"]),
        ({**VALID, "sample_prompts": ["p" * 301]}, ["body", "sample_prompts", 0]),
        ({**VALID, "metadata": {"k": 1}}, ["body", "metadata", "k"]),
        ({**VALID, "seed": -1}, ["body", "seed"]),
        ({**VALID, "unexpected": True}, ["body", "unexpected"]),
        ({"concepts": ["ring"]}, ["body", "model"]),
    ],
)
def test_invalid_job_bodies_are_422_naming_the_field(
    alice: httpx.Client, no_rows_left: None, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = alice.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"})

    problem = _problem(response, 422)
    assert loc in _locs(problem)
    assert problem["detail"]


def test_malformed_json_is_a_400(alice: httpx.Client, no_rows_left: None) -> None:
    response = alice.post(
        "/v1/jobs",
        content=b'{"model": "demo", "concepts": [',
        headers={"Content-Type": "application/json"},
    )
    assert _problem(response, 400)["type"] == "/problems/malformed-json"


def test_a_body_that_is_not_json_is_a_415(alice: httpx.Client, no_rows_left: None) -> None:
    response = alice.post("/v1/jobs", content=b"model=demo", headers={"Content-Type": "text/plain"})
    _problem(response, 415)


def test_an_oversized_body_is_a_413(
    alice: httpx.Client, settings: Settings, no_rows_left: None
) -> None:
    huge = {**VALID, "metadata": {"blob": "x" * settings.max_request_bytes}}
    _problem(alice.post("/v1/jobs", json=huge), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"model": "demo", "concepts": ["ring"], "metadata": {"blob": "'
        for _ in range(settings.max_request_bytes // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    response = alice.post(
        "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _problem(response, 413)


# garbage, {"t": 1}, "", {}, and a well-formed cursor whose id is not a job id (with a NUL)
FORGED_CURSOR = "eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsImlkIjoiYVx1MDAwMCJ9"


@pytest.mark.parametrize("cursor", ["not-base64!", "eyJ0IjogMX0", "", "e30", FORGED_CURSOR])
def test_a_bad_cursor_is_a_422_naming_after(
    alice: httpx.Client, cursor: str, no_rows_left: None
) -> None:
    problem = _problem(alice.get("/v1/jobs", params={"after": cursor or "%%%"}), 422)
    assert ["query", "after"] in _locs(problem)


def test_a_page_size_over_the_limit_is_a_422_naming_limit(
    alice: httpx.Client, no_rows_left: None
) -> None:
    problem = _problem(alice.get("/v1/jobs", params={"limit": 101}), 422)
    assert ["query", "limit"] in _locs(problem)
    assert ["query", "limit"] in _locs(_problem(alice.get("/v1/jobs?limit=zero"), 422))


def test_an_artifact_name_escaping_the_job_is_a_422(alice: httpx.Client) -> None:
    job_id = alice.post("/v1/jobs", json=VALID).json()["id"]
    # %2F keeps the client from normalising the path away before it reaches the server
    for name in ("..%2F..%2Feraser.db", "unet%2F..%2F..%2Fsecrets", "%2Fetc%2Fpasswd"):
        problem = _problem(alice.get(f"/v1/jobs/{job_id}/artifacts/{name}"), 422)
        assert ["path", "name"] in _locs(problem)


def test_unknown_routes_and_methods_are_problems_too(alice: httpx.Client) -> None:
    _problem(alice.get("/v1/nothing-here"), 404)
    _problem(alice.delete("/v1/jobs"), 405)
    _problem(alice.get("/v1/jobs/does-not-exist"), 404)
    _problem(alice.get("/v1/jobs/%00"), 404)
    _problem(alice.get("/v1/jobs/%00/events"), 404)
    _problem(alice.post("/v1/jobs/%00/cancel"), 404)
    _problem(alice.get("/v1/jobs/%00/artifacts"), 404)
    job_id = alice.post("/v1/jobs", json=VALID).json()["id"]
    for last_event_id in ("abc", "-5", "9" * 30):
        problem = _problem(
            alice.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last_event_id}), 422
        )
        assert ["header", "last-event-id"] in _locs(problem)
    problem = _problem(alice.get(f"/v1/jobs/{job_id}/events", params={"after": "9" * 30}), 422)
    assert ["query", "after"] in _locs(problem)
