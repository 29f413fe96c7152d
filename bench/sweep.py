"""The sweep: every shape and colour of the toy world and a few multi-concept jobs, each method
with several seeds, compared at equal erasure with paired 95 % confidence intervals.

    python bench/sweep.py [--concepts all] [--jobs red+orange,circle+square,ring+blue]
                          [--methods esd,ap,ap:gumbel,ap:damage] [--seeds 3]
                          [--images-per-caption N] [--workers 2] [--quick] [--out FILE]
    python bench/sweep.py --merge colours.json --merge shapes.json [--keep esd,ap] [--out FILE]

A method is `esd`, `ap` (the default adversary) or `ap:<variant>`: `ap:gumbel` sets
Hyperparameters.adversary = "gumbel"; `ap:key=value/key=value` sets any knob. The first method is
the reference of the paired differences. Every run uses core/assets/toyworld/recommended.json
and the real engine (`core.erasure.erase`). Prints one table (equal-erasure ESR, each method's
PSR there with its interval, the paired difference, the kept concept each method hurts most and
the final ESR) and writes the JSON report (per-run tallies included, so it can be re-analysed).
`--merge` prints one table from reports of separate sittings measured with the same settings,
on different jobs or with different methods (a new variant beside stored runs); `--keep` compares
only some of the stored methods.
docs/proving_protocol.md says what the numbers mean and how long the full sweep takes.
"""

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click

from core.toyworld.paths import DEMO_MODEL_DIR, RECOMMENDED_FILE, TOYWORLD_DIR
from core.toyworld.recommended import Recommended
from core.toyworld.sweep import (
    DEFAULT_MULTI_JOBS,
    SweepSettings,
    default_jobs,
    job_name,
    markdown_table,
    merge_reports,
    parse_jobs,
    parse_method_specs,
    run_sweep,
)

# Quick: checks the wiring in well under a minute; the numbers mean nothing.
_QUICK_ITERATIONS = 4
_QUICK_EVAL_EVERY = 2
_QUICK_DDIM_STEPS = 4
_QUICK_IMAGES_PER_CAPTION = 2
_QUICK_REPLICATES = 200
# 492 kept pictures per method put a 5-point difference outside the 95 % interval when both
# methods keep 80 % (unpaired bound; `pictures_for_paired_difference(0.32)`); a single-concept job
# has 30 kept captions, so at 3 seeds that is 5.5 per caption. docs/proving_protocol.md §2.1.
IMAGES_PER_CAPTION = 6


@click.command()
@click.option(
    "--concepts",
    "concept_text",
    default="all",
    show_default=True,
    help="Concepts erased one at a time: 'all' (every shape and colour), 'none', or a list.",
)
@click.option(
    "--jobs",
    "jobs_text",
    default=",".join(job_name(j) for j in DEFAULT_MULTI_JOBS),
    show_default=True,
    help="Multi-concept jobs, concepts joined by '+'; '' for none.",
)
@click.option("--methods", default="esd,ap", show_default=True)
@click.option("--seeds", default=3, show_default=True, help="Erasure seeds 0..N-1 per method.")
@click.option(
    "--images-per-caption",
    type=click.IntRange(1, 100),
    default=IMAGES_PER_CAPTION,
    show_default=True,
    help="Pictures per caption and judged checkpoint (not in --quick).",
)
@click.option("--workers", default=2, show_default=True, help="Processes, 1 torch thread each.")
@click.option("--replicates", default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--quick", is_flag=True, help="Few updates, steps and pictures: wiring only.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON report.")
@click.option(
    "--judge",
    "judge_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=TOYWORLD_DIR,
    show_default=True,
    help="Folder of the judge's weights.",
)
@click.option(
    "--merge",
    "merged",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Run nothing: merge reports measured with the same settings (different jobs or methods).",
)
@click.option(
    "--keep",
    "kept_text",
    default="",
    help="With --merge: only these methods, in this order (the first is the reference).",
)
def main(
    concept_text: str,
    jobs_text: str,
    methods: str,
    seeds: int,
    images_per_caption: int,
    workers: int,
    replicates: int,
    quick: bool,
    out: Path | None,
    judge_dir: Path,
    merged: tuple[Path, ...],
    kept_text: str,
) -> None:
    if kept_text and not merged:
        raise click.BadParameter("only with --merge", param_hint="--keep")
    if merged:
        try:
            kept = [name.strip() for name in kept_text.split(",") if name.strip()]
            report = merge_reports([json.loads(p.read_text()) for p in merged], kept or None)
        except (ValueError, KeyError) as error:
            raise click.BadParameter(str(error), param_hint="--merge") from error
        if out:
            out.write_text(json.dumps(report, indent=2))
        click.echo(markdown_table(report))
        return
    recommended = Recommended.load(RECOMMENDED_FILE)
    jobs: list[tuple[str, ...]]
    try:
        if concept_text.strip().lower() == "all":
            jobs = [j for j in default_jobs() if len(j) == 1]
        elif concept_text.strip().lower() == "none":
            jobs = []
        else:
            jobs = [(c,) for j in parse_jobs(concept_text) for c in j]
        jobs += parse_jobs(jobs_text)
        specs = parse_method_specs(methods, recommended.hyperparameters)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    if not jobs:
        raise click.BadParameter("nothing to erase: give --concepts or --jobs")
    jobs = list(dict.fromkeys(jobs))
    if not quick:
        recommended = dataclasses.replace(
            recommended,
            sampling=dataclasses.replace(
                recommended.sampling, images_per_caption=images_per_caption
            ),
        )
    else:
        recommended = recommended.with_iterations(_QUICK_ITERATIONS, eval_every=_QUICK_EVAL_EVERY)
        recommended = dataclasses.replace(
            recommended,
            sampling=dataclasses.replace(
                recommended.sampling,
                steps=_QUICK_DDIM_STEPS,
                images_per_caption=_QUICK_IMAGES_PER_CAPTION,
            ),
        )
        replicates = min(replicates, _QUICK_REPLICATES)
    started = time.monotonic()

    def log(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.0f}s] {line}", err=True)

    log(f"load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="sweep-") as work_dir:
        report = run_sweep(
            SweepSettings(
                jobs=jobs,
                methods=specs,
                seeds=seeds,
                recommended=recommended,
                model_dir=DEMO_MODEL_DIR,
                judge_dir=judge_dir,
                work_dir=Path(work_dir),
                workers=workers,
                replicates=replicates,
            ),
            log,
        )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    evaluation = report["settings"]["evaluation"]
    click.echo(
        f"{len(jobs)} job(s) × {len(specs)} method(s) × {seeds} seed(s), "
        f"{recommended.hyperparameters.iterations} updates, "
        f"{evaluation['images_per_caption']} pictures per caption at DDIM {evaluation['steps']} / "
        f"CFG {evaluation['guidance']}; {report['wall_time_s']:.0f} s on {workers} worker(s), "
        f"load {report['load_average']['start'][0]:.1f} → {report['load_average']['end'][0]:.1f}; "
        f"CPU s: train {report['cpu_s']['train']:.0f}, pictures {report['cpu_s']['judge']:.0f}\n"
    )
    click.echo(markdown_table(report))


if __name__ == "__main__":
    sys.exit(main())
