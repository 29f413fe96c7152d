"""What a finished run ships (algorithm.md §6), written into a staging folder inside the output
folder and renamed into place item by item, `manifest.json` last: a crash or cancel never leaves a
half-written file, and a manifest means the run's outputs are all there."""

import json
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from core.erasure.adversary import Adversary
from core.erasure.parameters import TrainedSubset

DELTA = "delta.safetensors"
UNET = "unet"
MANIFEST = "manifest.json"
ADVERSARIAL_REPORT = "adversarial_concepts.json"
TRAINING_LOG = "training_log.jsonl"
SAMPLES = "samples.png"

REPORT_TOP = 10  # entries of softmax(π_c) listed per erased concept
GRID_ADVERSARIAL_ROWS = 2  # top adversarial concepts shown per erased concept
FINAL_LOSS_WINDOW = 10  # final losses are the mean of the last updates: one update is noisy
DEFAULT_CONTROL_PROMPTS = ("a photo of a dog", "a house", "a tree")
_LIBRARIES = ("torch", "diffusers", "transformers", "safetensors", "scikit-learn", "numpy")
_LABEL_WIDTH = 160  # pixels left of the images for the prompt
_LABEL_CHARS = 28  # what fits in _LABEL_WIDTH with PIL's default font
_HEADER_HEIGHT = 14  # the "base | erased" column titles
_LINE_HEIGHT = 12  # PIL's default font, one line of label
_MIN_CELL = 96  # smaller samples (toy models) are enlarged by a whole factor to be visible


@dataclass(frozen=True)
class GridSettings:
    steps: int
    guidance: float
    seed: int
    control_prompts: Sequence[str]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def final_losses(log: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each loss over the last FINAL_LOSS_WINDOW updates."""
    window = log[-FINAL_LOSS_WINDOW:]
    keys = ("erase", "preserve", "adversary", "loss")
    return {
        key: sum(r[key] for r in window) / len(window)
        for key in keys
        if window and all(key in r for r in window)
    }


def adversarial_report(adversaries: Sequence[Adversary]) -> dict[str, Any]:
    """Per erased concept: R_c with distances, final softmax(π_c) (top 10), draws per candidate."""
    report = {}
    for adversary in adversaries:
        words, probabilities = adversary.candidates.words, adversary.distribution().tolist()
        candidates = [
            {"word": w, "distance": d, "probability": p, "draws": n}
            for w, d, p, n in zip(
                words, adversary.candidates.distances, probabilities, adversary.draws, strict=True
            )
        ]
        ranked = sorted(candidates, key=lambda c: -c["probability"])[:REPORT_TOP]
        report[adversary.candidates.concept] = {
            "top": [{"word": c["word"], "probability": c["probability"]} for c in ranked],
            "candidates": candidates,
        }
    return report


def top_adversarial_words(adversary: Adversary, count: int) -> list[str]:
    order = torch.argsort(adversary.distribution(), descending=True, stable=True)[:count]
    return [adversary.candidates.words[int(i)] for i in order]


class RowRole(StrEnum):
    """Why a prompt is in the grid, written under it: a reader must not take a row that changed
    on purpose (erased) for damage, nor miss that the adversarial rows are the ones at risk."""

    ERASED = "erased: should change"
    ADVERSARIAL = "adversarial: should stay"
    CONTROL = "control: should stay"


_ROLE_COLOURS = {RowRole.ERASED: "firebrick", RowRole.ADVERSARIAL: "navy", RowRole.CONTROL: "gray"}


@dataclass(frozen=True)
class GridRow:
    prompt: str
    role: RowRole


@torch.no_grad()
def _generate(pipeline: Any, prompts: list[str], grid: GridSettings) -> list[Image.Image]:
    """One image per prompt, each from its own fixed seed (so before and after share noise)."""
    generators = [torch.Generator().manual_seed(grid.seed + i) for i in range(len(prompts))]
    images: list[Image.Image] = pipeline(
        prompts,
        num_inference_steps=grid.steps,
        guidance_scale=grid.guidance,
        generator=generators,
        output_type="pil",
    ).images
    return images


def sample_grid(
    pipeline: Any, subset: TrainedSubset, rows: Sequence[GridRow], grid: GridSettings
) -> Image.Image:
    """One row per prompt, labelled with its prompt and role; base model θ left, erased model θ'
    right, same seeds."""
    prompts = [row.prompt for row in rows]
    erased = _generate(pipeline, prompts, grid)
    with subset.base_weights():
        base = _generate(pipeline, prompts, grid)
    factor = -(-_MIN_CELL // min(base[0].size))  # ceil; 1 for SD's 512 px samples
    if factor > 1:
        size = (base[0].width * factor, base[0].height * factor)
        base = [image.resize(size, Image.Resampling.NEAREST) for image in base]
        erased = [image.resize(size, Image.Resampling.NEAREST) for image in erased]
    width, height = base[0].size
    sheet = Image.new(
        "RGB", (_LABEL_WIDTH + 2 * width, _HEADER_HEIGHT + height * len(prompts)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    draw.text((_LABEL_WIDTH + 2, 2), "base", fill="black")
    draw.text((_LABEL_WIDTH + width + 2, 2), "erased", fill="black")
    for index, (row, before, after) in enumerate(zip(rows, base, erased, strict=True)):
        top = _HEADER_HEIGHT + index * height
        draw.text((4, top + 4), row.prompt[:_LABEL_CHARS], fill="black")
        draw.text((4, top + 4 + _LINE_HEIGHT), f"({row.role})", fill=_ROLE_COLOURS[row.role])
        sheet.paste(before, (_LABEL_WIDTH, top))
        sheet.paste(after, (_LABEL_WIDTH + width, top))
    return sheet


def grid_rows(
    concepts: Sequence[str], adversaries: Sequence[Adversary], controls: Sequence[str]
) -> list[GridRow]:
    """Erased concepts, then their top adversarial concepts (the neighbours erasure would damage
    most, which AP protects), then unrelated control prompts; each prompt once, first role wins."""
    adversarial = [w for a in adversaries for w in top_adversarial_words(a, GRID_ADVERSARIAL_ROWS)]
    rows: dict[str, RowRole] = {}
    for prompts, role in (
        (concepts, RowRole.ERASED),
        (adversarial, RowRole.ADVERSARIAL),
        (controls, RowRole.CONTROL),
    ):
        for prompt in prompts:
            rows.setdefault(prompt, role)
    return [GridRow(prompt, role) for prompt, role in rows.items()]


def _replace(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(source, target)


def write_outputs(
    out_dir: Path,
    *,
    pipeline: Any,
    subset: TrainedSubset,
    adversaries: Sequence[Adversary],
    concepts: Sequence[str],
    manifest: dict[str, Any],
    log: Sequence[dict[str, Any]],
    grid: GridSettings,
) -> list[str]:
    """Write every output; return their names relative to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-outputs-", dir=out_dir))
    try:
        save_file(
            {k: v.contiguous().cpu() for k, v in subset.state().items()},
            staging / DELTA,
            # what `eraser apply` checks the base against, and names when it is another
            metadata={
                "base_model_hash": manifest["base_model"]["content_hash"],
                "base_model_id": manifest["base_model"]["id"],
            },
        )
        subset.unet.save_pretrained(staging / UNET, safe_serialization=True)
        (staging / ADVERSARIAL_REPORT).write_text(
            json.dumps(adversarial_report(adversaries), indent=2)
        )
        (staging / TRAINING_LOG).write_text("".join(json.dumps(r) + "\n" for r in log))
        rows = grid_rows(concepts, adversaries, grid.control_prompts)
        sample_grid(pipeline, subset, rows, grid).save(staging / SAMPLES)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        names = [DELTA, UNET, ADVERSARIAL_REPORT, TRAINING_LOG, SAMPLES, MANIFEST]
        for name in names:  # manifest last: its presence means everything else is in place
            _replace(staging / name, out_dir / name)
        return names
    finally:
        shutil.rmtree(staging, ignore_errors=True)
