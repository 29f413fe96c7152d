"""The job's `evaluation` section over HTTP: defaults filled in and shown, bad values refused
with a 422 naming the field (and no job row), the stage visible in the progress view, and each
model's evaluator in /v1/models."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db.types import utcnow
from core.jobs.models import Job

VALID = {"model": "demo", "concepts": ["ring"]}


def test_a_job_without_an_evaluation_section_gets_the_defaults(alice: httpx.Client) -> None:
    created = alice.post("/v1/jobs", json=VALID)
    assert created.status_code == 202, created.text
    evaluation = alice.get(f"/v1/jobs/{created.json()['id']}").json()["evaluation"]
    assert evaluation["enabled"] is True and evaluation["default_prompts"] is True
    assert evaluation["seeds"] == [0, 1, 2] and evaluation["steps"] is None
    assert evaluation["acceptance"] == {
        "min_erasure_rate": 80.0,
        "min_preservation_rate": None,
        "max_preservation_drop": 15.0,
        "max_alignment_drop": 3.0,
    }


def test_a_job_keeps_the_evaluation_it_asked_for(alice: httpx.Client) -> None:
    section = {
        "erasure_prompts": [" a red ring ", "a red ring"],
        "seeds": [7],
        "acceptance": {"min_erasure_rate": 95, "max_alignment_drop": None},
    }
    created = alice.post("/v1/jobs", json={**VALID, "evaluation": section}).json()
    evaluation = alice.get(f"/v1/jobs/{created['id']}").json()["evaluation"]
    assert evaluation["erasure_prompts"] == ["a red ring"]  # stripped, duplicates dropped
    assert evaluation["seeds"] == [7]
    assert evaluation["acceptance"]["min_erasure_rate"] == 95
    assert evaluation["acceptance"]["max_alignment_drop"] is None
    assert evaluation["acceptance"]["max_preservation_drop"] == 15.0  # default kept


@pytest.mark.parametrize(
    ("section", "loc"),
    [
        ({"seeds": [1, 1]}, ["seeds"]),
        ({"seeds": []}, ["seeds"]),
        ({"seeds": [2**40]}, ["seeds", 0]),  # the item, named by its index
        ({"seeds": list(range(17))}, ["seeds"]),
        ({"erasure_prompts": ["a\u0000b"]}, ["erasure_prompts"]),
        ({"preservation_prompts": [" "]}, ["preservation_prompts"]),
        ({"preservation_prompts": ["p" * 301]}, ["preservation_prompts", 0]),
        ({"erasure_prompts": [f"p{i}" for i in range(65)]}, ["erasure_prompts"]),
        ({"acceptance": {"min_erasure_rate": 150}}, ["acceptance", "min_erasure_rate"]),
        ({"acceptance": {"max_preservation_drop": -1}}, ["acceptance", "max_preservation_drop"]),
        ({"acceptance": {"bogus": 1}}, ["acceptance", "bogus"]),
        ({"steps": 0}, ["steps"]),
        ({"guidance": 99}, ["guidance"]),
        ({"unknown": True}, ["unknown"]),
    ],
)
def test_a_bad_evaluation_section_is_a_422_naming_the_field(
    alice: httpx.Client, db_session: Session, section: dict[str, Any], loc: list[str]
) -> None:
    response = alice.post("/v1/jobs", json={**VALID, "evaluation": section})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    locs = [error["loc"] for error in response.json()["errors"]]
    assert ["body", "evaluation", *loc] in locs, locs
    assert db_session.scalar(select(func.count()).select_from(Job)) == 0


def test_the_progress_view_names_its_stage(alice: httpx.Client, db_session: Session) -> None:
    job_id = alice.post("/v1/jobs", json=VALID).json()["id"]
    started = utcnow() - timedelta(seconds=10)
    db_session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status="running",
            progress_stage="evaluation",
            progress_step=6,
            progress_total=24,
            attempt_started_at=started,
            attempt_start_step=0,
            updated_at=started + timedelta(seconds=3),
        )
    )
    db_session.commit()
    progress = alice.get(f"/v1/jobs/{job_id}").json()["progress"]
    assert progress["stage"] == "evaluation" and progress["step"] == 6
    assert progress["eta_seconds"] == pytest.approx(9.0)  # 6 images in 3 s, 18 to go


def test_models_name_their_evaluator(alice: httpx.Client) -> None:
    models = {m["name"]: m for m in alice.get("/v1/models").json()["items"]}
    assert models["demo"]["evaluator"] == "judge"
