"""Concept sweep: how well does a short erasure work on each concept of the toy world?

    python bench/concept_sweep.py [--concepts circle,square,…] [--iterations 100] [--seeds 3]
                                  [--methods esd,ap] [--out FILE]

Erases every listed concept on its own (default: the six shapes) with the settings of
core/assets/toyworld/recommended.json and `--iterations` updates (default: the demo's, which the
CI erasure test also uses), judges only the final model, and prints one row per concept: the
change in ESR and in PSR (same axis, other axis) against the base model, mean ± std over seeds,
and how many runs meet the CI test's bar (ESR up ≥ 50 points, same-axis PSR down ≤ 15).
"""

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from core.toyworld.metrics import parse_concepts
from core.toyworld.paths import DEMO_MODEL_DIR, RECOMMENDED_FILE, TOYWORLD_DIR
from core.toyworld.proving import BenchSettings, parse_methods, run_bench
from core.toyworld.recommended import Recommended
from core.toyworld.world import SHAPES

# The bar of tests/toyworld/test_erasure_works.py (the must-show 4).
MIN_ESR_GAIN = 50.0
MAX_PSR_LOSS = 15.0


def deltas(report: dict[str, Any], method: str) -> dict[str, list[float]]:
    """Per seed: ESR gain, PSR loss (same axis), PSR loss (other axis), in points."""
    base = report["base"]
    finals = [run["final"] for run in report["methods"][method]["runs"]]
    return {
        "esr_gain": [f["esr"] - base["esr"] for f in finals],
        "psr_loss": [base["psr"] - f["psr"] for f in finals],
        "other_loss": [base["psr_other_axis"] - f["psr_other_axis"] for f in finals],
    }


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):+.1f} ± {np.std(values):.1f}"


def markdown_table(reports: dict[str, dict[str, Any]], methods: list[str]) -> str:
    lines = [
        "| concept | base ESR | method | ESR gain ↑ | PSR loss ↓ | PSR loss, other axis ↓ "
        f"| runs with gain ≥ {MIN_ESR_GAIN:.0f} and loss ≤ {MAX_PSR_LOSS:.0f} |",
        "|---|---|---|---|---|---|---|",
    ]
    for concept, report in reports.items():
        for method in methods:
            d = deltas(report, method)
            meets = sum(
                g >= MIN_ESR_GAIN and loss <= MAX_PSR_LOSS
                for g, loss in zip(d["esr_gain"], d["psr_loss"], strict=True)
            )
            lines.append(
                f"| {concept} | {report['base']['esr']:.1f} | {method.upper()} "
                f"| {_cell(d['esr_gain'])} | {_cell(d['psr_loss'])} | {_cell(d['other_loss'])} "
                f"| {meets}/{len(d['esr_gain'])} |"
            )
    return "\n".join(lines)


@click.command()
@click.option("--concepts", "concept_text", default=",".join(SHAPES), show_default=True)
@click.option("--methods", default="esd,ap", show_default=True)
@click.option("--seeds", default=3, show_default=True, help="Erasure seeds 0..N-1 per method.")
@click.option("--iterations", type=int, default=None, help="Default: the demo's (CI test's).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON report.")
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
def main(
    concept_text: str,
    methods: str,
    seeds: int,
    iterations: int | None,
    out: Path | None,
    threads: int,
) -> None:
    torch.set_num_threads(threads)
    try:
        concepts, method_list = parse_concepts(concept_text), parse_methods(methods)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    recommended = Recommended.load(RECOMMENDED_FILE)
    updates = iterations or recommended.demo_iterations
    recommended = recommended.with_iterations(updates, eval_every=updates)  # final model only
    started = time.monotonic()

    def log(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.0f}s] {line}", err=True)

    reports = {}
    for concept in concepts:
        with tempfile.TemporaryDirectory(prefix="sweep-") as work_dir:
            reports[concept], _ = run_bench(
                BenchSettings(
                    concepts=[concept],
                    methods=method_list,
                    seeds=seeds,
                    recommended=recommended,
                    model_dir=DEMO_MODEL_DIR,
                    judge_dir=TOYWORLD_DIR,
                    work_dir=Path(work_dir),
                ),
                log,
            )
    table = markdown_table(reports, [m.value for m in method_list])
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"iterations": updates, "reports": reports}, indent=2))
    click.echo(f"{updates} updates, {seeds} seed(s), {time.monotonic() - started:.0f} s\n")
    click.echo(table)


if __name__ == "__main__":
    sys.exit(main())
