"""`evaluate`: generate the plan's prompts and seeds with the base and the erased model, score
every image, write the report; resumable image batch by image batch.

The state (scores so far, the pictures, the time spent) is written after every batch into
`state_dir`, so a run that is killed continues where it stopped, and the time it reports is the
sum over every run that worked on it.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from core.erasure.models import load_base_model, resolve_device, translate_oom
from core.erasure.outputs import ADVERSARIAL_REPORT, DELTA, MANIFEST, UNET
from core.erasure.types import ErasureError
from core.evaluation.evaluators import ADVERSARIAL_PROMPTS, Evaluator, load_evaluator
from core.evaluation.report import Item, draw_figure, per_prompt, rates, verdict
from core.evaluation.types import (
    ERASURE,
    FIGURE_FILE,
    PRESERVATION,
    REPORT_FILE,
    STATE_DIR,
    EvaluationError,
    EvaluationHooks,
    EvaluationJob,
    EvaluationProgress,
    EvaluationResult,
)
from core.toyworld.evaluate import SamplingSettings, generate

STATE_FILE = "state.json"
MODELS = ("base", "erased")


def concepts_of(job: EvaluationJob) -> list[str]:
    """The job's concepts, or those the erase output's manifest names."""
    if job.concepts:
        return list(dict.fromkeys(c.strip() for c in job.concepts))
    manifest = job.erased / MANIFEST
    if manifest.is_file():
        return list(json.loads(manifest.read_text()).get("concepts", []))
    raise EvaluationError(f"no concepts given and no {MANIFEST} in {job.erased} names them")


def adversarial_of(job: EvaluationJob, concepts: list[str]) -> list[str]:
    """AP's top adversarial concepts (the ones the erasure was most likely to damage)."""
    if job.adversarial_concepts:
        return list(job.adversarial_concepts)
    report = job.erased / ADVERSARIAL_REPORT
    if not report.is_file():
        return []
    raw = json.loads(report.read_text())
    return [
        entry["word"]
        for concept in concepts
        for entry in raw.get(concept, {}).get("top", [])[:ADVERSARIAL_PROMPTS]
    ]


def plan(job: EvaluationJob, evaluator: Evaluator, concepts: list[str]) -> list[Item]:
    request = job.request
    erasure, preservation = list(request.erasure_prompts), list(request.preservation_prompts)
    if request.default_prompts:
        erasure = [*evaluator.default_erasure_prompts(concepts), *erasure]
        adversarial = adversarial_of(job, concepts)
        preservation = [
            *evaluator.default_preservation_prompts(concepts, adversarial),
            *preservation,
        ]
    erasure = list(dict.fromkeys(erasure))
    preservation = [p for p in dict.fromkeys(preservation) if p not in erasure]
    if not erasure:
        raise EvaluationError("no erasure prompts: list some, or keep the default prompts")
    return [
        Item(kind, prompt, seed)
        for kind, prompts in ((ERASURE, erasure), (PRESERVATION, preservation))
        for prompt in prompts
        for seed in request.seeds
    ]


def _fingerprint(job: EvaluationJob, items: list[Item], steps: int, guidance: float) -> str:
    """What a saved state must match to be continued: the same models, plan and sampling."""
    delta = job.erased / DELTA
    payload = {
        "model": job.model,
        "erased": str(job.erased),
        "delta_bytes": delta.stat().st_size if delta.is_file() else None,
        "evaluator": job.evaluator,
        "items": [asdict(item) for item in items],
        "steps": steps,
        "guidance": guidance,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _State:
    """Scores and pictures so far, on disk."""

    def __init__(self, folder: Path, fingerprint: str, size: int) -> None:
        self.folder = folder
        self.scores: dict[str, list[dict[str, Any] | None]] = {m: [None] * size for m in MODELS}
        self.elapsed_s = 0.0
        file = folder / STATE_FILE
        if file.is_file():
            raw = json.loads(file.read_text())
            if raw.get("fingerprint") == fingerprint:
                self.scores, self.elapsed_s = raw["scores"], float(raw["elapsed_s"])
                return
        shutil.rmtree(folder, ignore_errors=True)  # another plan's state: start over

    @property
    def done(self) -> int:
        return sum(score is not None for m in MODELS for score in self.scores[m])

    def image_path(self, model: str, index: int) -> Path:
        return self.folder / f"{model}-{index:05d}.png"

    def save(self, fingerprint: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"fingerprint": fingerprint, "scores": self.scores, "elapsed_s": self.elapsed_s}
        handle, temp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out)
        os.replace(temp, self.folder / STATE_FILE)  # atomic: a kill never leaves half a state


def _apply_erased(pipeline: Any, erased: Path, content_hash: str) -> None:
    """Put the erased weights into the pipeline's UNet: the delta of an erase output, or the UNet
    of a full pipeline folder (`eraser apply`'s output)."""
    delta = erased / DELTA
    if delta.is_file():
        with safe_open(str(delta), framework="pt") as handle:
            trained_on = (handle.metadata() or {}).get("base_model_hash")
        if trained_on and trained_on != content_hash:
            raise EvaluationError(
                f"{delta} was trained on another base model (hash {trained_on[:12]}…)"
            )
        weights = load_file(delta, device=str(pipeline.unet.device))
        _missing, unexpected = pipeline.unet.load_state_dict(weights, strict=False)
        if unexpected:
            raise EvaluationError(f"{delta} holds weights this UNet lacks: {unexpected[:3]}")
        return
    unet_dir = erased / UNET
    if (unet_dir / "config.json").is_file():
        unet = UNet2DConditionModel.from_pretrained(unet_dir).to(pipeline.unet.device)
        pipeline.unet.load_state_dict(unet.state_dict())
        return
    raise EvaluationError(f"{erased} holds neither {DELTA} nor a {UNET}/ folder")


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] N×3×H×W → N×H×W×3 uint8."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def evaluate(job: EvaluationJob, hooks: EvaluationHooks | None = None) -> EvaluationResult:
    hooks = hooks or EvaluationHooks()
    started = time.perf_counter()
    out_dir = job.out_dir or job.erased
    state_dir = job.state_dir or out_dir / STATE_DIR
    concepts = concepts_of(job)
    evaluator = load_evaluator(job.evaluator, job.device)
    evaluator.check_concepts(concepts)
    items = plan(job, evaluator, concepts)
    device = resolve_device(job.device)
    try:
        with translate_oom(device):
            base = load_base_model(job.model, device, job.cache_dir)
    except ErasureError as error:
        raise EvaluationError(error.message) from error
    steps = job.request.steps or base.sampling.steps
    guidance = base.sampling.guidance if job.request.guidance is None else job.request.guidance
    fingerprint = _fingerprint(job, items, steps, guidance)
    state = _State(state_dir, fingerprint, len(items))
    total = len(MODELS) * len(items)
    resumed_from = state.done or None
    if resumed_from and hooks.on_resume:
        hooks.on_resume(state.done, total)
    elif hooks.on_start:
        hooks.on_start(total)
    settings = SamplingSettings(steps=steps, guidance=guidance, batch_size=job.batch_size)
    previous_elapsed = state.elapsed_s

    def elapsed() -> float:
        return previous_elapsed + time.perf_counter() - started

    pipeline = base.pipeline
    with translate_oom(device):
        for model in MODELS:
            todo = [i for i, score in enumerate(state.scores[model]) if score is None]
            if model == "erased" and todo:
                _apply_erased(pipeline, job.erased, base.content_hash)
            for start in range(0, len(todo), job.batch_size):
                if hooks.should_cancel and hooks.should_cancel():
                    state.elapsed_s = elapsed()
                    state.save(fingerprint)
                    return EvaluationResult(
                        "cancelled", state.done, total, elapsed_s=state.elapsed_s,
                        resumed_from=resumed_from,
                    )  # fmt: skip
                batch = todo[start : start + job.batch_size]
                pictures = _to_uint8(
                    generate(
                        pipeline,
                        [items[i].prompt for i in batch],
                        [items[i].seed for i in batch],
                        settings,
                    )
                )
                scores = evaluator.score(
                    pictures,
                    [items[i].prompt for i in batch],
                    [items[i].kind for i in batch],  # type: ignore[misc]
                    concepts,
                )
                state.folder.mkdir(parents=True, exist_ok=True)
                for i, picture, score in zip(batch, pictures, scores, strict=True):
                    Image.fromarray(picture).save(state.image_path(model, i))
                    state.scores[model][i] = score.as_dict()
                state.elapsed_s = elapsed()
                state.save(fingerprint)
                if hooks.on_progress:
                    hooks.on_progress(EvaluationProgress(state.done, total, state.elapsed_s))

    base_scores = [s for s in state.scores["base"] if s is not None]
    erased_scores = [s for s in state.scores["erased"] if s is not None]
    measured = rates(items, base_scores, erased_scores)
    summary: dict[str, Any] = {
        "evaluator": evaluator.name,
        "concepts": concepts,
        "settings": {"steps": steps, "guidance": guidance, "seeds": list(job.request.seeds)},
        "images": total,
        "rates": measured,
        "thresholds": job.request.acceptance.model_dump(mode="json"),
        "verdict": verdict(measured, job.request.acceptance),
    }
    figure = draw_figure(
        items,
        [
            np.asarray(Image.open(state.image_path("base", i)).convert("RGB"))
            for i in range(len(items))
        ],
        [
            np.asarray(Image.open(state.image_path("erased", i)).convert("RGB"))
            for i in range(len(items))
        ],
        base_scores,
        erased_scores,
        summary,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    figure.save(out_dir / FIGURE_FILE)
    summary["elapsed_s"] = round(elapsed(), 3)
    summary["prompts"] = per_prompt(items, base_scores, erased_scores)
    handle, temp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(summary, out, indent=2)
    os.replace(temp, out_dir / REPORT_FILE)
    return EvaluationResult(
        status="succeeded",
        steps_completed=total,
        total_steps=total,
        report=summary,
        outputs=[REPORT_FILE, FIGURE_FILE],
        elapsed_s=summary["elapsed_s"],
        resumed_from=resumed_from,
    )
