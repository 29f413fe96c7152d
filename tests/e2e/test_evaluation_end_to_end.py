"""The evaluation stage end to end (issue 11, must-shows 1, 2 and 4): jobs on the `demo` model,
judged by the toy world's `judge`, over real HTTP, run by real Celery workers on real Postgres
and Redis.

Two jobs erase `ring` with AP in a short run (the recommended settings with fewer, larger steps:
measured to erase ring completely on this model) and evaluate a few prompts × 2 seeds. They run
side by side on two workers (the CPU time of two trainings is the cost; the wall time is shared),
and the worker evaluating the second one is killed half-way through its evaluation; the other
worker takes it over.
"""

import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from e2e_support import (
    WorkerProcess,
    artifact_manifest,
    create_job,
    follow_events,
    wait_for_status,
)
from PIL import Image
from safetensors.torch import load

from core.settings import Settings
from core.toyworld.recommended import Recommended

SHORT_RUN = {"iterations": 25, "ddim_steps": 4, "lr": 0.003}
ERASURE_PROMPTS = ["a red ring", "a blue ring"]
PRESERVATION_PROMPTS = ["a blue square", "a purple triangle"]
SEEDS = [0, 1]
BATCHES = {"ERASER_EVALUATION_BATCH_SIZE": "4"}  # several progress steps, a kill between two


def _ring_job(client: httpx.Client, **evaluation: Any) -> str:
    recommended = Recommended.load()
    hyperparameters = {**recommended.hyperparameters.model_dump(mode="json"), **SHORT_RUN}
    plan = {
        "default_prompts": False,
        "erasure_prompts": ERASURE_PROMPTS,
        "preservation_prompts": PRESERVATION_PROMPTS,
        "seeds": SEEDS,
        **evaluation,
    }
    return create_job(
        client,
        model="demo",
        concepts=["ring"],
        method="ap",
        train_method=recommended.train_method.value,
        hyperparameters=hyperparameters,
        seed=0,
        evaluation=plan,
    )


def _download(client: httpx.Client, job_id: str, name: str) -> bytes:
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 200, response.text
    return response.content


def test_jobs_erasing_a_shape_are_judged_and_gated_and_a_kill_during_evaluation_retrains_nothing(
    alice: httpx.Client, settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    workers = [start_worker(**BATCHES), start_worker(**BATCHES)]
    passing = _ring_job(alice)
    # Impossible: a preservation prompt that names the erased shape, to be kept at 100 %.
    gated = _ring_job(
        alice,
        preservation_prompts=[*PRESERVATION_PROMPTS, "a green ring"],
        acceptance={"min_preservation_rate": 100},
    )

    mid_evaluation = _wait_for_evaluation_progress(alice, gated)
    victim = next(w for w in workers if f"job {gated}: claimed" in w.output())
    victim.kill()  # SIGKILL of worker and job child, half-way through the evaluation
    trained = alice.get(f"/v1/jobs/{gated}").json()
    assert trained["status"] == "running" and trained["progress"]["stage"] == "evaluation"
    # the other worker's reaper requeues the job once the dead worker's lease expires, and that
    # worker resumes it after its own job

    _assert_passes_and_reports_everywhere(alice, passing)
    _assert_resumed_in_evaluation_and_failed_the_gate(alice, gated, mid_evaluation)


def _assert_passes_and_reports_everywhere(client: httpx.Client, job_id: str) -> None:
    events = follow_events(client, job_id, timeout_s=400)
    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "succeeded", kinds
    # training, then the evaluation stage with its own progress, then the verdict
    stage = next(event for event in events if event["kind"] == "stage")
    assert stage["data"]["stage"] == "evaluation" and stage["data"]["resumed"] is False
    images = 2 * len(SEEDS) * (len(ERASURE_PROMPTS) + len(PRESERVATION_PROMPTS))
    assert stage["data"]["total"] == images
    progress = [event["data"] for event in events if event["kind"] == "progress"]
    assert progress[-1] == {**progress[-1], "stage": "evaluation", "step": images}
    stages = [p["stage"] for p in progress]
    training, evaluation = stages.count("training"), stages.count("evaluation")
    assert stages == ["training"] * training + ["evaluation"] * evaluation and evaluation > 1
    assert kinds.index("stage") < kinds.index("evaluated") < kinds.index("succeeded")
    evaluated = next(event for event in events if event["kind"] == "evaluated")["data"]
    assert evaluated["acceptance"] == "passed"

    job = client.get(f"/v1/jobs/{job_id}").json()
    result = job["result"]
    assert result["acceptance"] == "passed", result
    assert result["erasure_rate"] >= 80, result
    base_preservation = result["evaluation"]["base_preservation_rate"]
    assert abs(base_preservation - result["preservation_rate"]) <= 15, result
    assert result["alignment_change"] is None  # the judge scores no alignment
    assert result["evaluation"]["evaluator"] == "judge"
    assert result["timings"]["training_s"] > 0 and result["timings"]["evaluation_s"] > 0
    assert evaluated["erasure_rate"] == result["erasure_rate"]
    assert job["evaluation"]["seeds"] == SEEDS and job["progress"]["stage"] == "evaluation"

    names = {artifact["name"] for artifact in artifact_manifest(client, job_id)}
    assert {"evaluation.json", "evaluation.png", "delta.safetensors"} <= names
    report = json.loads(_download(client, job_id, "evaluation.json"))
    assert report["verdict"]["acceptance"] == "passed"
    assert report["rates"]["erasure_rate"] == result["erasure_rate"]
    assert [p["prompt"] for p in report["prompts"]] == ERASURE_PROMPTS + PRESERVATION_PROMPTS
    ring_images = [image for p in report["prompts"][:2] for image in p["images"]]
    assert [image["seed"] for image in ring_images] == SEEDS * 2
    assert sum(image["base"]["found"] for image in ring_images) >= 3  # the base draws rings
    figure = Image.open(io.BytesIO(_download(client, job_id, "evaluation.png")))
    # a header, two sections of two rows, base and erased columns of two enlarged pictures
    assert figure.width >= 600 and figure.height >= 4 * 96 + 153


def _assert_resumed_in_evaluation_and_failed_the_gate(
    client: httpx.Client, job_id: str, mid_evaluation: int
) -> None:
    events = follow_events(client, job_id, timeout_s=400)
    kinds = [event["kind"] for event in events]
    assert kinds[-1] == "succeeded" and kinds.count("succeeded") == 1, kinds
    assert kinds.count("claimed") == 2 and "requeued" in kinds
    second_claim = max(i for i, kind in enumerate(kinds) if kind == "claimed")
    after = events[second_claim:]
    # no training after the kill: no training progress, no checkpoint, no engine resume
    assert not [e for e in after if e["kind"] == "progress" and e["data"]["stage"] == "training"]
    assert not [e for e in after if e["kind"] in ("checkpoint", "resumed")]
    training_steps = [
        e["data"]["step"]
        for e in events
        if e["kind"] == "progress" and e["data"]["stage"] == "training"
    ]
    assert (
        training_steps == sorted(training_steps) and training_steps[-1] == SHORT_RUN["iterations"]
    )
    resumed = [e["data"] for e in after if e["kind"] == "stage"]
    assert len(resumed) == 1 and resumed[0]["resumed"] is True
    assert mid_evaluation <= resumed[0]["step"] < resumed[0]["total"]
    evaluated = [e["data"] for e in events if e["kind"] == "evaluated"]
    assert len(evaluated) == 1 and evaluated[0]["acceptance"] == "failed"
    assert "min_preservation_rate" in evaluated[0]["failed_checks"]

    job = wait_for_status(client, job_id, {"succeeded"})
    result = job["result"]
    assert result["acceptance"] == "failed" and result["preservation_rate"] < 100
    assert result["steps_completed"] == SHORT_RUN["iterations"] and result["resumed_from"] is None
    assert result["erasure_rate"] >= 80  # the erasure worked; the gate asked for the impossible
    assert result["timings"]["evaluation_s"] > 0
    delta = load(_download(client, job_id, "delta.safetensors"))
    assert delta and all(".attn2." in name for name in delta)
    report = json.loads(_download(client, job_id, "evaluation.json"))
    green_ring = next(p for p in report["prompts"] if p["prompt"] == "a green ring")
    assert green_ring["kind"] == "preservation"
    assert not any(image["erased"]["found"] for image in green_ring["images"])


def _wait_for_evaluation_progress(client: httpx.Client, job_id: str) -> int:
    """Poll until the job has scored some but not all evaluation images; returns the step."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        progress = client.get(f"/v1/jobs/{job_id}").json()["progress"]
        if progress and progress["stage"] == "evaluation" and progress["step"] > 0:
            assert progress["step"] < progress["total"], "evaluation ended before the kill"
            return int(progress["step"])
        time.sleep(0.1)
    raise AssertionError("the job never reached its evaluation stage")
