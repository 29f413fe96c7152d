"""The proving ground: erase a concept from the toy model with each method and several seeds,
judge the results, and aggregate ESR/PSR like the paper.

The engine is used exactly as the service uses it (`core.erasure.erase` on the pipeline folder).
The ESR/PSR-over-updates path comes from the engine's own checkpoints: every `eval_every` updates
it writes the trained subset, and the `on_checkpoint` hook judges it before training goes on.
"""

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from safetensors.torch import load_file

from core.erasure import erase
from core.erasure.types import ErasureConfig, Hooks
from core.hyperparameters import Method
from core.toyworld.evaluate import (
    Judged,
    SamplingSettings,
    all_prompts,
    generate_and_judge,
    with_ddim,
)
from core.toyworld.judge import Judge
from core.toyworld.metrics import Scores, psr_at_esr, score
from core.toyworld.recommended import Recommended
from core.toyworld.world import canonical_caption

DELTA_FILE = "delta.safetensors"  # the engine's shipped trained subset (see core.erasure.types)
ADVERSARIAL_REPORT_FILE = "adversarial_concepts.json"  # AP only: the candidates and final π

Log = Callable[[str], None]


class Evaluator:
    """Judges the base UNet, or the base UNet with a trained subset swapped in, on every caption
    of the world with fixed seeds."""

    def __init__(self, model_dir: Path, judge: Judge, sampling: SamplingSettings) -> None:
        self.model_dir = model_dir
        self.pipe = with_ddim(StableDiffusionPipeline.from_pretrained(model_dir))
        self.judge = judge
        self.sampling = sampling
        self.prompts = all_prompts()

    @contextlib.contextmanager
    def _weights(self, trained: dict[str, torch.Tensor]) -> Iterator[None]:
        parameters = dict(self.pipe.unet.named_parameters())
        unknown = set(trained) - set(parameters)
        if unknown:
            raise KeyError(f"not parameters of the toy UNet: {sorted(unknown)[:3]}")
        original = {name: parameters[name].detach().clone() for name in trained}
        with torch.no_grad():
            for name, value in trained.items():
                parameters[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in original.items():
                    parameters[name].copy_(value)

    def judge_with(self, trained: dict[str, torch.Tensor] | None = None) -> Judged:
        with self._weights(trained or {}):
            return generate_and_judge(self.pipe, self.judge, self.prompts, self.sampling)


@dataclass
class Run:
    method: str
    seed: int
    curve: list[tuple[int, Scores]] = field(default_factory=list)  # (updates, scores)
    final: Judged | None = None
    wall_time_s: float = 0.0
    final_losses: dict[str, float] = field(default_factory=dict)
    adversarial_concepts: Any = None  # the engine's report, kept for reading AP's behaviour

    @property
    def final_scores(self) -> Scores:
        return self.curve[-1][1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "wall_time_s": round(self.wall_time_s, 1),
            "final_losses": self.final_losses,
            "adversarial_concepts": self.adversarial_concepts,
            "final": self.final_scores.as_dict(),
            "curve": [{"step": step, **s.as_dict()} for step, s in self.curve],
        }


def parse_methods(text: str) -> list[Method]:
    """'esd, ap' → [Method.ESD, Method.AP]; a ValueError names anything that is not a method."""
    methods = [Method(m.strip()) for m in text.split(",") if m.strip()]
    if not methods:
        raise ValueError("no method given")
    return methods


def erasure_config(
    model_dir: Path, concepts: list[str], method: Method, seed: int, recommended: Recommended
) -> ErasureConfig:
    """Identical settings for every method: only `method` differs (ESD ignores the adversary's
    knobs)."""
    return ErasureConfig(
        model=str(model_dir),
        concepts=concepts,
        method=method,
        train_method=recommended.train_method,
        hyperparameters=recommended.hyperparameters,
        seed=seed,
        device="cpu",
        checkpoint_every=recommended.eval_every,
        checkpoint_total_limit=1,
        sample_prompts=[canonical_caption("square", "blue"), canonical_caption("ring", "green")],
    )


def _trained_subset(checkpoint: Path) -> dict[str, torch.Tensor]:
    """A checkpoint folder's trained parameters: its one safetensors file (the other files are
    optimizer and RNG state)."""
    files = sorted(checkpoint.glob("*.safetensors"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one safetensors file in {checkpoint}, got {files}")
    return load_file(files[0])


def run_method(
    evaluator: Evaluator,
    base: Scores,
    concepts: list[str],
    method: Method,
    seed: int,
    recommended: Recommended,
    out_dir: Path,
    log: Log,
) -> Run:
    run = Run(method=method.value, seed=seed, curve=[(0, base)])
    total = recommended.hyperparameters.iterations

    def on_checkpoint(step: int, folder: Path) -> None:
        if step >= total:
            return  # the final model is judged from the shipped delta below
        scores = score(evaluator.judge_with(_trained_subset(folder)), concepts)
        run.curve.append((step, scores))
        log(f"{method.value} seed {seed} step {step}: ESR {scores.esr:.1f} PSR {scores.psr:.1f}")

    started = time.monotonic()
    config = erasure_config(evaluator.model_dir, concepts, method, seed, recommended)
    result = erase(config, out_dir, Hooks(on_checkpoint=on_checkpoint))
    run.wall_time_s = time.monotonic() - started
    run.final_losses = result.final_losses
    adversarial = out_dir / ADVERSARIAL_REPORT_FILE
    if adversarial.is_file():
        run.adversarial_concepts = json.loads(adversarial.read_text())
    run.final = evaluator.judge_with(load_file(out_dir / DELTA_FILE))
    final = score(run.final, concepts)
    run.curve.append((result.steps_completed, final))
    log(f"{method.value} seed {seed} final: ESR {final.esr:.1f} PSR {final.psr:.1f}")
    return run


def summarise(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=0))}


def mean_curve(runs: list[Run]) -> list[tuple[int, float, float]]:
    """(step, mean ESR, mean PSR) at the steps every run evaluated."""
    steps = sorted(set.intersection(*({s for s, _ in r.curve} for r in runs)))
    rows = []
    for step in steps:
        at = [dict(r.curve)[step] for r in runs]
        rows.append(
            (step, float(np.mean([s.esr for s in at])), float(np.mean([s.psr for s in at])))
        )
    return rows


@dataclass(frozen=True)
class BenchSettings:
    concepts: list[str]
    methods: list[Method]
    seeds: int
    recommended: Recommended
    model_dir: Path
    judge_dir: Path
    work_dir: Path


def equal_erasure(curves: dict[str, list[tuple[int, float, float]]]) -> dict[str, Any]:
    """PSR of each method at the highest ESR that every method reaches (mean curves)."""
    if not curves:
        return {}
    target = min(max(esr for _, esr, _ in rows) for rows in curves.values())
    return {
        "esr": target,
        "psr": {
            method: psr_at_esr([(esr, psr) for _, esr, psr in rows], target)
            for method, rows in curves.items()
        },
    }


def run_bench(settings: BenchSettings, log: Log) -> tuple[dict[str, Any], dict[str, Judged]]:
    """Every method × seed on the same concepts with the same settings. Returns the report and
    the judged pictures (base and each method's first seed) for the grid."""
    started = time.monotonic()
    recommended = settings.recommended
    evaluator = Evaluator(settings.model_dir, Judge.load(settings.judge_dir), recommended.sampling)
    base_judged = evaluator.judge_with()
    base = score(base_judged, settings.concepts)
    log(f"base: ESR {base.esr:.1f} PSR {base.psr:.1f}")
    pictures = {"base": base_judged}
    methods: dict[str, Any] = {}
    curves: dict[str, list[tuple[int, float, float]]] = {}
    for method in settings.methods:
        runs = []
        for seed in range(settings.seeds):
            out_dir = settings.work_dir / f"{'-'.join(settings.concepts)}-{method.value}-{seed}"
            runs.append(
                run_method(
                    evaluator, base, settings.concepts, method, seed, recommended, out_dir, log
                )
            )
        assert runs[0].final is not None
        pictures[method.value] = runs[0].final
        curves[method.value] = mean_curve(runs)
        finals = [r.final_scores for r in runs]
        other = [s.psr_other_axis for s in finals if s.psr_other_axis is not None]
        methods[method.value] = {
            "esr": summarise([s.esr for s in finals]),
            "psr": summarise([s.psr for s in finals]),
            "psr_other_axis": summarise(other) if other else None,
            "wall_time_s_per_run": summarise([r.wall_time_s for r in runs]),
            "mean_curve": [{"step": s, "esr": e, "psr": p} for s, e, p in curves[method.value]],
            "runs": [r.as_dict() for r in runs],
        }
    report = {
        "concepts": settings.concepts,
        "seeds": settings.seeds,
        "settings": {
            "train_method": recommended.train_method.value,
            "hyperparameters": recommended.hyperparameters.model_dump(mode="json"),
            "evaluation": {
                "ddim_steps": recommended.sampling.steps,
                "guidance": recommended.sampling.guidance,
                "images_per_caption": recommended.sampling.images_per_caption,
                "captions": len(evaluator.prompts),
                "eval_every": recommended.eval_every,
            },
        },
        "base": base.as_dict(),
        "methods": methods,
        "equal_erasure": equal_erasure(curves),
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    return report, pictures
