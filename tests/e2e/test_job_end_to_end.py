"""Must-show 1: a job over real HTTP, run by a real Celery worker on real Postgres and Redis,
followed over SSE to `succeeded`; every artifact downloads with the manifest's sha256 and the delta
loads into a diffusers pipeline."""

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from e2e_support import (
    WorkerProcess,
    artifact_manifest,
    create_job,
    follow_events,
    published_files,
)
from fast_job import PUBLISHED_ARTIFACTS
from safetensors.torch import load_file

from core.settings import Settings


def test_a_job_runs_to_success_and_its_artifacts_load_into_diffusers(
    alice: httpx.Client,
    settings: Settings,
    tiny_model: str,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    start_worker()
    job_id = create_job(alice, sample_prompts=["a dog"], metadata={"ticket": "T-1"})

    events = follow_events(alice, job_id)

    kinds = [event["kind"] for event in events]
    assert kinds[0] == "created" and kinds[-1] == "succeeded", kinds
    assert {"claimed", "progress", "checkpoint"} <= set(kinds)
    assert [event["id"] for event in events] == sorted({event["id"] for event in events})
    final_progress = [event for event in events if event["kind"] == "progress"][-1]["data"]
    assert final_progress["step"] == final_progress["total"] == 20
    assert set(final_progress["adversarial_concepts"]) == {"cat"}
    # resuming the stream after the last progress event replays only what came after it
    last_progress_id = [event["id"] for event in events if event["kind"] == "progress"][-1]
    resumed = follow_events(alice, job_id, last_event_id=last_progress_id)
    assert [event["id"] for event in resumed] == [
        event["id"] for event in events if event["id"] > last_progress_id
    ]

    job = alice.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["attempt"] == 1
    assert job["result"]["steps_completed"] == 20

    manifest = artifact_manifest(alice, job_id)
    names = {artifact["name"] for artifact in manifest}
    assert names >= PUBLISHED_ARTIFACTS
    assert len(published_files(settings, job_id)) == len(manifest)  # one set, nothing stray
    downloads = tmp_path / "downloads"
    for artifact in manifest:
        response = alice.get(f"/v1/jobs/{job_id}/artifacts/{artifact['name']}")
        assert response.status_code == 200, response.text
        assert len(response.content) == artifact["bytes"]
        assert hashlib.sha256(response.content).hexdigest() == artifact["sha256"]
        target = downloads / artifact["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.content)

    delta = load_file(downloads / "delta.safetensors")
    pipeline = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None)
    base = {name: value.clone() for name, value in pipeline.unet.state_dict().items()}
    _missing, unexpected = pipeline.unet.load_state_dict(delta, strict=False)
    assert unexpected == [] and delta and all(".attn2." in name for name in delta)
    assert any(not torch.equal(base[name], value) for name, value in delta.items())  # trained
    erased_unet = UNet2DConditionModel.from_pretrained(downloads / "unet")
    published = erased_unet.state_dict()
    for name, value in pipeline.unet.state_dict().items():
        assert torch.equal(published[name], value), name
