"""Proving ground: does erasure work on the toy model, and does AP preserve better than ESD?

    python bench/proving_ground.py --concept circle [--methods esd,ap] [--seeds 3] [--quick]
                                   [--out FILE]

For each method and seed the concept is erased with identical settings (core/assets/toyworld/
recommended.json), every caption of the toy world is generated with fixed seeds, and the judge
reads each picture. Prints a markdown table (mean ± std over seeds) and writes the JSON report,
a before/after grid (`<out>_grid.png`) and the ESR/PSR-over-updates plot (`<out>_tradeoff.png`).
"""

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import torch

from core.toyworld.figures import before_after_grid, grid_prompts, tradeoff_plot
from core.toyworld.metrics import parse_concepts
from core.toyworld.paths import DEMO_MODEL_DIR, RECOMMENDED_FILE, TOYWORLD_DIR
from core.toyworld.proving import BenchSettings, parse_methods, run_bench
from core.toyworld.recommended import Recommended

_QUICK_ITERATIONS = 20
_QUICK_IMAGES_PER_CAPTION = 2


def _cell(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "–"
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def markdown_table(report: dict[str, Any]) -> str:
    base = report["base"]
    other = base["psr_other_axis"]
    lines = [
        f"Erased: {', '.join(report['concepts'])} — {report['seeds']} seed(s)",
        "",
        "| model | ESR ↑ | PSR (same axis) ↑ | PSR (other axis) ↑ |",
        "|---|---|---|---|",
        f"| base | {base['esr']:.1f} | {base['psr']:.1f} | "
        f"{'–' if other is None else f'{other:.1f}'} |",
    ]
    for method, row in report["methods"].items():
        lines.append(
            f"| {method.upper()} | {_cell(row['esr'])} | {_cell(row['psr'])} | "
            f"{_cell(row['psr_other_axis'])} |"
        )
    equal = report.get("equal_erasure")
    if equal and equal.get("psr"):
        cells = ", ".join(
            f"{m.upper()} {'n/a' if v is None else f'{v:.1f}'}" for m, v in equal["psr"].items()
        )
        lines += ["", f"PSR at equal ESR ({equal['esr']:.1f}, mean curves): {cells}"]
    return "\n".join(lines)


@click.command()
@click.option(
    "--concept",
    "concept_text",
    required=True,
    help="A shape or colour of the toy world, or a comma-separated list.",
)
@click.option("--methods", default="esd,ap", show_default=True)
@click.option("--seeds", default=3, show_default=True, help="Erasure seeds 0..N-1 per method.")
@click.option("--quick", is_flag=True, help="Few updates and pictures: checks the wiring only.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="JSON report; the grid and plot go next to it. Default: a temp folder.",
)
@click.option(
    "--recommended",
    "recommended_file",
    type=click.Path(path_type=Path, exists=True),
    default=RECOMMENDED_FILE,
    show_default=True,
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, exists=True),
    default=DEMO_MODEL_DIR,
    show_default=True,
    help="The toy pipeline folder.",
)
@click.option(
    "--judge",
    "judge_dir",
    type=click.Path(path_type=Path, exists=True),
    default=TOYWORLD_DIR,
    show_default=True,
    help="Folder of the judge's weights.",
)
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
def main(
    concept_text: str,
    methods: str,
    seeds: int,
    quick: bool,
    out: Path | None,
    recommended_file: Path,
    model_dir: Path,
    judge_dir: Path,
    threads: int,
) -> None:
    torch.set_num_threads(threads)
    try:
        concepts, method_list = parse_concepts(concept_text), parse_methods(methods)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    recommended = Recommended.load(recommended_file)
    if quick:
        recommended = dataclasses.replace(
            recommended.with_iterations(_QUICK_ITERATIONS, eval_every=_QUICK_ITERATIONS // 2),
            sampling=dataclasses.replace(
                recommended.sampling, images_per_caption=_QUICK_IMAGES_PER_CAPTION
            ),
        )
    out = out or Path(tempfile.mkdtemp(prefix="proving-")) / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.0f}s] {line}", err=True)

    with tempfile.TemporaryDirectory(prefix="proving-runs-") as work_dir:
        report, pictures = run_bench(
            BenchSettings(
                concepts=concepts,
                methods=method_list,
                seeds=seeds,
                recommended=recommended,
                model_dir=model_dir,
                judge_dir=judge_dir,
                work_dir=Path(work_dir),
            ),
            log,
        )
    stem = out.with_suffix("")
    grid = before_after_grid(
        [(name.upper() if name != "base" else "base", judged) for name, judged in pictures.items()],
        grid_prompts(concepts),
        per_cell=min(2, recommended.sampling.images_per_caption),
        path=Path(f"{stem}_grid.png"),
    )
    curves = {
        method: [(r["step"], r["esr"], r["psr"]) for r in row["mean_curve"]]
        for method, row in report["methods"].items()
    }
    plot = tradeoff_plot(
        curves,
        f"erasing {', '.join(concepts)}: mean of {seeds} seed(s)",
        Path(f"{stem}_tradeoff.png"),
    )
    report["figures"] = {"grid": grid.name, "tradeoff": plot.name}
    out.write_text(json.dumps(report, indent=2))
    click.echo(markdown_table(report))
    click.echo(f"\nreport {out}\ngrid {grid}\nplot {plot}", err=True)


if __name__ == "__main__":
    sys.exit(main())
