"""`eraser toyworld …`: rebuild the toy world, or judge a pipeline on it."""

import json
import time
from pathlib import Path

import click

from core.toyworld.paths import DEMO_MODEL_DIR, TOYWORLD_DIR


@click.group()
def toyworld() -> None:
    """The toy world: a CPU-sized text-to-image model and the judge that scores it."""


@toyworld.command()
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=DEMO_MODEL_DIR,
    show_default=True,
    help="Where the diffusers pipeline folder is written.",
)
@click.option(
    "--assets-dir",
    type=click.Path(path_type=Path),
    default=TOYWORLD_DIR,
    show_default=True,
    help="Where the judge and the build report are written.",
)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--quick", is_flag=True, help="A few steps of everything (checks the wiring).")
def build(seed: int, model_dir: Path, assets_dir: Path, threads: int, quick: bool) -> None:
    """Train the toy model and judge from SEED (about 40 minutes on 2 CPU cores)."""
    from core.toyworld.build import BuildConfig
    from core.toyworld.build import build as run_build

    config = BuildConfig(seed=seed, threads=threads)
    if quick:
        config = config.quick()
    started = time.monotonic()

    def log(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.0f}s] {line}", err=True)

    report = run_build(config, model_dir, assets_dir, log)
    click.echo(json.dumps({"wall_time_s": report["wall_time_s"], **report["accuracy"]}, indent=2))


@toyworld.command()
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, exists=True),
    default=DEMO_MODEL_DIR,
    show_default=True,
)
@click.option("--images-per-caption", default=10, show_default=True)
def judge(model_dir: Path, images_per_caption: int) -> None:
    """Generate every caption of the world with fixed seeds and print the judged accuracy."""
    from diffusers import StableDiffusionPipeline

    from core.toyworld.evaluate import SamplingSettings, all_prompts, generate_and_judge, with_ddim
    from core.toyworld.judge import Judge

    pipe = with_ddim(StableDiffusionPipeline.from_pretrained(model_dir))
    judged = generate_and_judge(
        pipe,
        Judge.load(TOYWORLD_DIR),
        all_prompts(),
        SamplingSettings(images_per_caption=images_per_caption),
    )
    click.echo(
        json.dumps(
            {
                "shape": float(judged.shape_correct().mean()),
                "colour": float(judged.colour_correct().mean()),
            }
        )
    )
