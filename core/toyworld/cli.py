"""`eraser toyworld …`: rebuild the toy world, or judge a pipeline on it."""

import json
import time
from pathlib import Path

import click

from core.toyworld.paths import BUILD_REPORT_FILE, DEMO_MODEL_DIR, TOYWORLD_DIR


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
    """Train the toy model and judge from SEED (30-50 minutes on 2 CPU cores)."""
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


@toyworld.command("retrain-judge")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option(
    "--assets-dir",
    type=click.Path(path_type=Path),
    default=TOYWORLD_DIR,
    show_default=True,
    help="Where the judge is written and the build report updated.",
)
def retrain_judge(seed: int, threads: int, assets_dir: Path) -> None:
    """Retrain only the judge (a few minutes) and re-judge the committed model with it."""
    from core.toyworld.build import BuildConfig
    from core.toyworld.build import retrain_judge as run_retrain

    started = time.monotonic()

    def log(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.0f}s] {line}", err=True)

    report = run_retrain(BuildConfig(seed=seed, threads=threads), DEMO_MODEL_DIR, assets_dir, log)
    click.echo(json.dumps({"judge": report["judge"], **report["accuracy"]}, indent=2))


@toyworld.command()
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, exists=True),
    default=DEMO_MODEL_DIR,
    show_default=True,
)
@click.option("--images-per-caption", default=10, show_default=True)
@click.option(
    "--update-report",
    is_flag=True,
    help="Also write the result into the build report's 'generated' section.",
)
def judge(model_dir: Path, images_per_caption: int, update_report: bool) -> None:
    """Generate every caption of the world with fixed seeds and print the judged accuracy."""
    from core.toyworld.build import REPORTED_GUIDANCES
    from core.toyworld.evaluate import SamplingSettings, judge_model
    from core.toyworld.judge import Judge

    generated = judge_model(
        model_dir,
        Judge.load(TOYWORLD_DIR),
        SamplingSettings(images_per_caption=images_per_caption),
        REPORTED_GUIDANCES,
    )
    click.echo(json.dumps(generated, indent=2))
    if update_report:
        report = json.loads(BUILD_REPORT_FILE.read_text())
        generated["re_evaluated"] = "after the build, by `eraser toyworld judge --update-report`"
        generated["at_build_time"] = report["accuracy"]["generated"]
        report["accuracy"]["generated"] = generated
        BUILD_REPORT_FILE.write_text(json.dumps(report, indent=2))
