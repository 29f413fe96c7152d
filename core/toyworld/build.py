"""Rebuild the whole toy world from one seed: judge, VAE, UNet + text encoder, the diffusers
pipeline folder, and a build report with wall times and the acceptance numbers.

Order: the judge first (cheap, and it then measures the VAE's reconstructions), the VAE, the
latents of the training set, the diffusion model; the pipeline is saved, reloaded with
`StableDiffusionPipeline.from_pretrained` and judged on generated pictures, so the report
describes exactly what was written to disk.
"""

import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import transformers
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

from core.erasure.models import SamplingDefaults
from core.toyworld import models
from core.toyworld.evaluate import SamplingSettings, judge_model
from core.toyworld.judge import Judge, JudgeTraining, accuracy, none_report, train_judge
from core.toyworld.training import (
    DiffusionTraining,
    Log,
    VaeTraining,
    encode_latents,
    images_to_tensor,
    latent_scaling_factor,
    train_diffusion,
    train_vae,
)
from core.toyworld.world import make_dataset, make_negatives

# Besides the acceptance CFG, the report records these scales (see SamplingSettings.guidance).
REPORTED_GUIDANCES = (6.0,)


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    train_images: int = 24_000
    judge_images: int = 24_000
    heldout_images: int = 3_600
    # Negatives for the judge's "none" answer; the held-out ones come from another seed.
    judge_negatives: int = 14_000
    heldout_negatives: int = 3_500
    vae: VaeTraining = field(default_factory=VaeTraining)
    diffusion: DiffusionTraining = field(default_factory=DiffusionTraining)
    judge: JudgeTraining = field(default_factory=JudgeTraining)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    threads: int = 2

    def quick(self) -> "BuildConfig":
        """A few steps of everything: checks the wiring in seconds, learns nothing useful."""
        return BuildConfig(
            seed=self.seed,
            train_images=360,
            judge_images=360,
            heldout_images=72,
            judge_negatives=70,
            heldout_negatives=14,
            vae=VaeTraining(steps=3, batch_size=8),
            diffusion=DiffusionTraining(steps=3, batch_size=8),
            judge=JudgeTraining(steps=3, batch_size=8),
            sampling=SamplingSettings(steps=2, images_per_caption=1),
            threads=self.threads,
        )


def _reconstruct(vae: Any, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                vae.decode(vae.encode(images[i : i + batch_size]).latent_dist.mean).sample
                for i in range(0, len(images), batch_size)
            ]
        ).clamp(-1, 1)


# Data seeds, as offsets from the build seed: every set its own, so nothing held out was seen.
_TRAIN, _JUDGE, _HELDOUT, _JUDGE_NEGATIVES, _HELDOUT_NEGATIVES = 0, 1, 2, 3, 4


def train_and_check_judge(config: BuildConfig, log: Log) -> tuple[Judge, dict[str, Any]]:
    """The judge, and what it reads on held-out real pictures and held-out negatives."""
    judge_data = make_dataset(config.judge_images, seed=config.seed + _JUDGE)
    negatives = make_negatives(config.judge_negatives, seed=config.seed + _JUDGE_NEGATIVES)
    judge = train_judge(judge_data, config.judge, config.seed, log, negatives=negatives)
    heldout = make_dataset(config.heldout_images, seed=config.seed + _HELDOUT)
    shape, colour = accuracy(
        judge, images_to_tensor(heldout.images), heldout.shapes, heldout.colours
    )
    log(f"judge on real held-out pictures: shape {shape:.3f} colour {colour:.3f}")
    heldout_negatives = make_negatives(
        config.heldout_negatives, seed=config.seed + _HELDOUT_NEGATIVES
    )
    negatives_read = none_report(judge, heldout_negatives)
    for kind, row in negatives_read.items():
        log(f"judge on held-out {kind}: {row}")
    return judge, {
        "judge_on_real": {"shape": shape, "colour": colour},
        "judge_on_negatives": negatives_read,
    }


def retrain_judge(
    config: BuildConfig, model_dir: Path, assets_dir: Path, log: Log
) -> dict[str, Any]:
    """Retrain only the judge (the model stays as committed), save it, re-judge the model's
    generated pictures, and update the build report's judge sections."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    judge, checks = train_and_check_judge(config, log)
    judge.save(assets_dir)
    vae = AutoencoderKL.from_pretrained(model_dir / "vae").eval()
    heldout = make_dataset(config.heldout_images, seed=config.seed + _HELDOUT)
    recon_shape, recon_colour = accuracy(
        judge, _reconstruct(vae, images_to_tensor(heldout.images)), heldout.shapes, heldout.colours
    )
    checks["judge_on_vae_reconstructions"] = {"shape": recon_shape, "colour": recon_colour}
    checks["generated"] = judge_model(model_dir, judge, config.sampling, REPORTED_GUIDANCES)
    report_file = assets_dir / "build_report.json"
    report: dict[str, Any] = (
        json.loads(report_file.read_text()) if report_file.is_file() else {"accuracy": {}}
    )
    report["accuracy"].update(checks)
    report.setdefault("parameters", {})["judge"] = sum(p.numel() for p in judge.parameters())
    report["judge"] = {
        "retrained_alone": "the model is the committed one; only the judge was retrained",
        "seed": config.seed,
        "config": asdict(config.judge),
        "judge_images": config.judge_images,
        "judge_negatives": config.judge_negatives,
        "heldout_images": config.heldout_images,
        "heldout_negatives": config.heldout_negatives,
        "wall_time_s": round(time.monotonic() - started, 1),
        "threads": config.threads,
    }
    report_file.write_text(json.dumps(report, indent=2))
    return report


def build(config: BuildConfig, model_dir: Path, assets_dir: Path, log: Log) -> dict[str, Any]:
    """Train everything and write the pipeline to `model_dir`, the judge and report to
    `assets_dir`. Returns the report."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    wall: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        wall[name] = round(time.monotonic() - since, 1)
        log(f"{name} done in {wall[name]:.0f}s")
        return time.monotonic()

    t = time.monotonic()
    train = make_dataset(config.train_images, seed=config.seed + _TRAIN)
    heldout = make_dataset(config.heldout_images, seed=config.seed + _HELDOUT)
    t = lap("data", t)

    judge, judge_checks = train_and_check_judge(config, log)
    heldout_images = images_to_tensor(heldout.images)
    t = lap("judge", t)

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = models.build_tokenizer(Path(scratch) / "tokenizer")
    vae = train_vae(models.build_vae(), train, config.vae, config.seed, log)
    recon_shape, recon_colour = accuracy(
        judge, _reconstruct(vae, heldout_images), heldout.shapes, heldout.colours
    )
    log(f"judge on VAE reconstructions: shape {recon_shape:.3f} colour {recon_colour:.3f}")
    t = lap("vae", t)

    means, stds = encode_latents(vae, train)
    scaling = latent_scaling_factor(means, stds, config.seed)
    vae.register_to_config(scaling_factor=scaling)
    unet, text_encoder = train_diffusion(
        models.build_unet(),
        models.build_text_encoder(tokenizer),
        tokenizer,
        means,
        stds,
        scaling,
        train.captions,
        config.diffusion,
        config.seed,
        log,
    )
    t = lap("diffusion", t)

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=models.build_sampling_scheduler(),  # type: ignore[arg-type]
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )
    if model_dir.exists():
        shutil.rmtree(model_dir)
    pipe.save_pretrained(model_dir, safe_serialization=True)
    # The engine's sample grids then use the setting this model is judged at, not SD's CFG 7.5.
    SamplingDefaults(steps=config.sampling.steps, guidance=config.sampling.guidance).save(model_dir)
    judge.save(assets_dir)

    generated = judge_model(model_dir, judge, config.sampling, REPORTED_GUIDANCES)
    log(
        f"judge on generated pictures: shape {generated['shape']:.3f} "
        f"colour {generated['colour']:.3f}"
    )
    lap("evaluation", t)
    wall["total"] = round(time.monotonic() - started, 1)

    report: dict[str, Any] = {
        "seed": config.seed,
        "config": asdict(config),
        "wall_time_s": wall,
        "parameters": {
            "vae": sum(p.numel() for p in vae.parameters()),
            "unet": sum(p.numel() for p in unet.parameters()),
            "text_encoder": sum(p.numel() for p in text_encoder.parameters()),
            "judge": sum(p.numel() for p in judge.parameters()),
        },
        "latent_scaling_factor": scaling,
        "accuracy": {
            **judge_checks,
            "judge_on_vae_reconstructions": {"shape": recon_shape, "colour": recon_colour},
            "generated": generated,
        },
        "environment": {
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": config.threads,
            "machine": platform.machine(),
        },
    }
    (assets_dir / "build_report.json").write_text(json.dumps(report, indent=2))
    return report
