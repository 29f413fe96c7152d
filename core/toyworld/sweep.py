"""The sweep: erase every concept of the toy world (and a few multi-concept jobs) with each method
and several seeds, and compare the methods at equal erasure with paired confidence intervals.

Where the time goes (measured, see docs/proving_protocol.md): generating the evaluation pictures,
not training. So a run does not judge its checkpoints while it trains; it keeps them, judges its
final model, and a checkpoint is judged only when the equal-erasure comparison needs it: for a
method whose final ESR is above the level every method reaches, its checkpoints are judged from
the last backwards until the mean ESR falls below that level. The base model is judged once for
the whole sweep (every job's base is the same pictures).

Runs are independent, so they are spread over worker processes (one torch thread each).
"""

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from core.erasure import erase
from core.erasure.types import Hooks
from core.hyperparameters import Hyperparameters, Method
from core.toyworld.evaluate import Judged, all_prompts
from core.toyworld.judge import Judge
from core.toyworld.metrics import (
    ALL_CONCEPTS,
    Curve,
    EqualErasure,
    Interval,
    Tally,
    _interval,
    equal_erasure_with_ci,
    kept_correct,
    paired_variance,
    parse_concepts,
    pictures_for_paired_difference,
    tally,
)
from core.toyworld.proving import DELTA_FILE, Evaluator, _trained_subset, erasure_config
from core.toyworld.recommended import Recommended
from core.toyworld.world import COLOUR_NAMES, SHAPES

Log = Callable[[str], None]

# Multi-concept jobs of the default sweep: two neighbouring colours, two shapes the old judge fell
# back on, and a shape with a colour (two axes at once).
DEFAULT_MULTI_JOBS: tuple[tuple[str, ...], ...] = (
    ("red", "orange"),
    ("circle", "square"),
    ("ring", "blue"),
)


@dataclass(frozen=True)
class MethodSpec:
    """`esd`, `ap`, `ap:gumbel`, `ap:damage`, `ap:adversary=damage/top_m=2`: a method and the
    Hyperparameters it overrides. A bare variant word means `adversary=<word>`, so a new
    adversary needs no code here; `key=value` pairs (joined by '/') set any other knob."""

    name: str
    method: Method
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "MethodSpec":
        name = text.strip().lower()
        base, _, variant = name.partition(":")
        method = Method(base)
        overrides: dict[str, Any] = {}
        for part in filter(None, variant.split("/")):
            key, equals, value = part.partition("=")
            if not equals:
                key, value = "adversary", part
            overrides[key.strip()] = json.loads(value) if _is_json(value) else value.strip()
        return cls(name, method, overrides)

    def hyperparameters(self, base: Hyperparameters) -> Hyperparameters:
        """`base` with the overrides, validated (an unknown knob or bad value raises)."""
        return Hyperparameters(**{**base.model_dump(), **self.overrides})


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def parse_method_specs(text: str, base: Hyperparameters) -> list[MethodSpec]:
    specs = [MethodSpec.parse(t) for t in text.split(",") if t.strip()]
    if not specs:
        raise ValueError("no method given")
    for spec in specs:
        try:
            spec.hyperparameters(base)
        except Exception as error:  # pydantic's message names the field
            raise ValueError(f"method {spec.name!r}: {error}") from error
    return list({s.name: s for s in specs}.values())


def parse_jobs(text: str) -> list[tuple[str, ...]]:
    """'red+orange, circle' → [('red', 'orange'), ('circle',)]."""
    return [tuple(parse_concepts(job.replace("+", ","))) for job in text.split(",") if job.strip()]


def default_jobs() -> list[tuple[str, ...]]:
    return [(c,) for c in (*SHAPES, *COLOUR_NAMES)] + list(DEFAULT_MULTI_JOBS)


@dataclass(frozen=True)
class SweepSettings:
    jobs: list[tuple[str, ...]]
    methods: list[MethodSpec]
    seeds: int
    recommended: Recommended
    model_dir: Path
    judge_dir: Path
    work_dir: Path
    workers: int = 2
    replicates: int = 1000


def job_name(concepts: Sequence[str]) -> str:
    return "+".join(concepts)


# ---- worker side -------------------------------------------------------------------------------
_evaluator: Evaluator | None = None


def _init_worker(model_dir: Path, judge_dir: Path, recommended: Recommended) -> None:
    global _evaluator
    torch.set_num_threads(1)
    _evaluator = Evaluator(model_dir, Judge.load(judge_dir), recommended.sampling)


def _predictions(judged: Judged) -> tuple[list[str], list[str]]:
    return judged.predicted_shapes.tolist(), judged.predicted_colours.tolist()


def _judge_task(subset_file: Path | None) -> tuple[tuple[list[str], list[str]], float]:
    """Predictions, and the CPU seconds they cost (on this shared machine wall time says more
    about the neighbours than about the work)."""
    assert _evaluator is not None
    started = time.process_time()
    judged = _evaluator.judge_with(load_file(subset_file) if subset_file else None)
    return _predictions(judged), time.process_time() - started


def _run_task(
    concepts: list[str],
    spec: MethodSpec,
    seed: int,
    recommended: Recommended,
    run_dir: Path,
) -> dict[str, Any]:
    """One erasure: train, keep its checkpoints, judge its final model."""
    assert _evaluator is not None
    kept_dir = run_dir / "checkpoints"
    kept_dir.mkdir(parents=True, exist_ok=True)
    total = recommended.hyperparameters.iterations

    def on_checkpoint(step: int, folder: Path) -> None:
        if step < total:  # the final model is the shipped delta
            shutil.copy(next(iter(sorted(folder.glob("*.safetensors")))), kept_dir / f"{step}.st")
            _trained_subset(folder)  # refuses a checkpoint that is not one subset file

    config = erasure_config(_evaluator.model_dir, concepts, spec.method, seed, recommended)
    config = config.model_copy(
        update={"hyperparameters": spec.hyperparameters(recommended.hyperparameters)}
    )
    started, cpu_started = time.monotonic(), time.process_time()
    result = erase(config, run_dir / "out", Hooks(on_checkpoint=on_checkpoint))
    trained, trained_cpu = time.monotonic() - started, time.process_time() - cpu_started
    predictions, judged_cpu = _judge_task(run_dir / "out" / DELTA_FILE)
    adversarial = run_dir / "out" / "adversarial_concepts.json"
    return {
        "steps": result.steps_completed,
        "final_losses": result.final_losses,
        "predictions": predictions,
        "train_wall_s": trained,
        "train_cpu_s": trained_cpu,
        "judge_cpu_s": judged_cpu,
        "adversarial_concepts": json.loads(adversarial.read_text())
        if adversarial.is_file()
        else None,
    }


# ---- coordinator -------------------------------------------------------------------------------
class _Pool:
    """A process pool, or the caller's own process when one worker is asked for (tests, and no
    start-up cost for a quick run)."""

    def __init__(self, settings: SweepSettings) -> None:
        args = (settings.model_dir, settings.judge_dir, settings.recommended)
        self.executor: ProcessPoolExecutor | None = None
        if settings.workers > 1:
            self.executor = ProcessPoolExecutor(
                settings.workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=args,
            )
        else:
            _init_worker(*args)

    def map(self, function: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        if self.executor is None:
            return [function(*call) for call in calls]
        futures = [self.executor.submit(function, *call) for call in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def _judged(predictions: tuple[list[str], list[str]], images_per_caption: int) -> Judged:
    prompts = [p for p in all_prompts() for _ in range(images_per_caption)]
    shapes, colours = predictions
    return Judged(prompts, torch.empty(0), np.asarray(shapes), np.asarray(colours))


def _mean_esr(tallies: list[Tally], concepts: Sequence[str]) -> float:
    idx = [ALL_CONCEPTS.index(c) for c in concepts]
    rates = [1 - t.hits[:, idx].sum(0) / (t.totals[idx] * t.hits.shape[0]) for t in tallies]
    return float(100.0 * np.mean(rates))


def run_sweep(settings: SweepSettings, log: Log) -> dict[str, Any]:
    started = time.monotonic()
    load_at_start = os.getloadavg()
    n_images = settings.recommended.sampling.images_per_caption
    pool = _Pool(settings)
    try:
        ((base_predictions, base_s),) = pool.map(_judge_task, [(None,)])
        log(f"base judged: {base_s:.0f} CPU s")
        calls, keys = [], []
        for concepts in settings.jobs:
            for spec in settings.methods:
                for seed in range(settings.seeds):
                    run_dir = settings.work_dir / job_name(concepts) / spec.name / str(seed)
                    calls.append((list(concepts), spec, seed, settings.recommended, run_dir))
                    keys.append((concepts, spec.name, seed, run_dir))
        log(f"{len(calls)} runs on {settings.workers} worker(s)")
        results = pool.map(_run_task, calls)
        runs = {(c, m, s): (r, d) for (c, m, s, d), r in zip(keys, results, strict=True)}
        for (c, m, s), (r, _) in runs.items():
            log(
                f"{job_name(c)} {m} seed {s}: train {r['train_cpu_s']:.0f} CPU s "
                f"({r['train_wall_s']:.0f} s wall), judge final {r['judge_cpu_s']:.0f} CPU s"
            )

        # Which checkpoints the equal-erasure comparison needs (see the module docstring).
        total = settings.recommended.hyperparameters.iterations
        every = settings.recommended.eval_every
        checkpoint_steps = list(range(every, total, every)) if every else []
        curves: dict[tuple[str, ...], dict[str, dict[int, list[Tally]]]] = {}
        for concepts in settings.jobs:
            curves[concepts] = {}
            base = tally(_judged(base_predictions, n_images), concepts, n_images)
            for spec in settings.methods:
                finals = [
                    tally(
                        _judged(runs[(concepts, spec.name, s)][0]["predictions"], n_images),
                        concepts,
                        n_images,
                    )
                    for s in range(settings.seeds)
                ]
                curves[concepts][spec.name] = {0: [base] * settings.seeds, total: finals}
        pending = [c for c in settings.jobs]
        extra_judged = 0
        judge_cpu = base_s + sum(r["judge_cpu_s"] for r in results)
        train_cpu = sum(r["train_cpu_s"] for r in results)
        for step in reversed(checkpoint_steps):
            judge_calls: list[tuple[Path]] = []
            wanted = []
            for concepts in pending:
                by_method = curves[concepts]
                level = min(
                    max(_mean_esr(t, concepts) for st, t in m.items() if st > 0)
                    for m in by_method.values()
                )
                for name, points in by_method.items():
                    earliest = min(st for st in points if st > 0)
                    if _mean_esr(points[earliest], concepts) > level:
                        for s in range(settings.seeds):
                            run_dir = runs[(concepts, name, s)][1]
                            judge_calls.append((run_dir / "checkpoints" / f"{step}.st",))
                            wanted.append((concepts, name, s))
            if not judge_calls:
                break
            outputs = pool.map(_judge_task, judge_calls)
            extra_judged += len(judge_calls)
            gathered: dict[tuple[tuple[str, ...], str], list[Tally]] = {}
            judge_cpu += sum(cpu for _, cpu in outputs)
            for (concepts, name, _seed), (predictions, _) in zip(wanted, outputs, strict=True):
                gathered.setdefault((concepts, name), []).append(
                    tally(_judged(predictions, n_images), concepts, n_images)
                )
            for (concepts, name), tallies in gathered.items():
                curves[concepts][name][step] = tallies
            log(f"judged step {step} of {len(gathered)} job×method curves")
    finally:
        pool.close()

    rows = []
    single_rows: list[EqualErasure] = []
    for concepts in settings.jobs:
        method_curves = {
            name: Curve(
                steps=sorted(points),
                tallies=[[points[st][s] for st in sorted(points)] for s in range(settings.seeds)],
            )
            for name, points in curves[concepts].items()
        }
        compared = equal_erasure_with_ci(
            method_curves, list(concepts), replicates=settings.replicates
        )
        if len(concepts) == 1:
            single_rows.append(compared)
        rows.append(
            {
                "concepts": list(concepts),
                "equal_erasure": compared.as_dict(),
                "pictures_for_5_points": _pictures_for_five_points(
                    compared, settings.recommended.sampling.images_per_caption
                ),
                "pictures_for_5_points_paired": _paired_pictures(runs, settings, concepts),
                "curves": {
                    name: {
                        "steps": c.steps,
                        "tallies": [[t.as_dict() for t in run] for run in c.tallies],
                    }
                    for name, c in method_curves.items()
                },
                "runs": {
                    name: [
                        {
                            k: v
                            for k, v in runs[(concepts, name, s)][0].items()
                            if k != "predictions"
                        }
                        for s in range(settings.seeds)
                    ]
                    for name in method_curves
                },
            }
        )
    report = {
        "settings": {
            "jobs": [list(j) for j in settings.jobs],
            "methods": {
                s.name: {"method": s.method.value, **s.overrides} for s in settings.methods
            },
            "seeds": settings.seeds,
            "train_method": settings.recommended.train_method.value,
            "hyperparameters": settings.recommended.hyperparameters.model_dump(mode="json"),
            "evaluation": {
                **dataclasses.asdict(settings.recommended.sampling),
                "checkpoint_every": settings.recommended.eval_every,
            },
            "bootstrap_replicates": settings.replicates,
            "workers": settings.workers,
        },
        "rows": rows,
        "mean_over_single_concepts": _mean_row(single_rows, [s.name for s in settings.methods]),
        "judged_checkpoints_beyond_finals": extra_judged,
        "wall_time_s": round(time.monotonic() - started, 1),
        # Work done, independent of the neighbours: CPU seconds of the runs (train) and of
        # generating + judging pictures; ÷ workers ≈ wall time on a quiet machine.
        "cpu_s": {"train": round(train_cpu, 1), "judge": round(judge_cpu, 1)},
        "load_average": {"start": load_at_start, "end": os.getloadavg()},
    }
    return report


def _paired_pictures(
    runs: dict[tuple[tuple[str, ...], str, int], tuple[dict[str, Any], Path]],
    settings: SweepSettings,
    concepts: tuple[str, ...],
) -> dict[str, dict[str, float]]:
    """From the final models' kept pictures, paired by prompt, image seed and training seed:
    the variance of one picture's difference from the reference method, the pictures per method
    that put a 5-point difference outside the 95 % interval (picture noise only), and the images
    per caption that means with this job's kept captions and seeds."""
    n_images = settings.recommended.sampling.images_per_caption
    reference = settings.methods[0].name

    def correct(name: str) -> np.ndarray:
        return np.concatenate(
            [
                kept_correct(
                    _judged(runs[(concepts, name, s)][0]["predictions"], n_images), concepts
                )
                for s in range(settings.seeds)
            ]
        )

    base = correct(reference)
    out = {}
    for spec in settings.methods[1:]:
        variance = paired_variance(correct(spec.name), base)
        pictures = pictures_for_paired_difference(variance)
        kept_captions = len(base) / (n_images * settings.seeds)
        out[spec.name] = {
            "per_picture_variance": variance,
            "pictures_per_method": pictures,
            "images_per_caption": float(np.ceil(pictures / (kept_captions * settings.seeds))),
        }
    return out


def _pictures_for_five_points(compared: EqualErasure, images_per_caption: int) -> dict[str, int]:
    """Images per caption at which each paired difference's 95 % interval would be ±5 points,
    scaling the measured half-width by 1/√pictures (the training-seed part of the noise does not
    shrink with pictures, so this is a lower bound when seeds dominate)."""
    needed = {}
    for name, interval in compared.difference.items():
        half = (interval.high - interval.low) / 2
        needed[name] = (
            int(np.ceil(images_per_caption * (half / 5.0) ** 2)) if np.isfinite(half) else -1
        )
    return needed


def _mean_row(rows: list[EqualErasure], methods: list[str]) -> dict[str, Any]:
    """Mean equal-erasure PSR over the single-concept jobs. Every job is resampled with the same
    bootstrap weights (same seeds, same image seeds), so replicate b of the mean is the mean of
    replicate b of every job."""
    if not rows:
        return {}
    out: dict[str, Any] = {"jobs": len(rows), "psr": {}, "difference": {}}
    for name in methods:
        replicates = np.nanmean([r.psr_replicates[name] for r in rows], axis=0)
        estimate = float(np.nanmean([r.psr[name].estimate for r in rows]))
        out["psr"][name] = _interval(estimate, replicates).as_dict()
    reference = methods[0]
    for name in methods[1:]:
        diffs = np.nanmean(
            [r.psr_replicates[name] - r.psr_replicates[reference] for r in rows], axis=0
        )
        estimate = float(
            np.nanmean([r.psr[name].estimate - r.psr[reference].estimate for r in rows])
        )
        out["difference"][name] = _interval(estimate, diffs).as_dict()
    return out


def merge_reports(
    reports: Sequence[dict[str, Any]], keep: Sequence[str] | None = None
) -> dict[str, Any]:
    """One report from sweeps run separately with the same settings, on different jobs (the
    colours and the shapes did not fit in one sitting on 2 cores) or with different methods on
    the same jobs (a variant measured later beside stored runs: every run is a function of its
    seed, so the stored columns are what a new sitting would measure again). Every row is
    recomputed from its stored curves with the same resampling weights (same seeds, same image
    seeds, same bootstrap seed), so the merge equals one big sweep; the first report's first
    method stays the reference. A job must have runs of every method.

    `keep` names the methods to compare, in order (the first is the reference); the others are
    left out before the equal-erasure level is found, so a method that erases little no longer
    holds down the level at which the kept ones are compared."""
    if not reports:
        raise ValueError("nothing to merge")
    compared = ("seeds", "train_method", "evaluation")

    def effective(report: dict[str, Any], spec: dict[str, Any]) -> Hyperparameters:
        # What a method ran with: the sitting's base plus the method's overrides, so a default
        # that changed between sittings does not refuse reports that ran the same thing
        overrides = {k: v for k, v in spec.items() if k != "method"}
        return Hyperparameters(**{**report["settings"]["hyperparameters"], **overrides})

    first = reports[0]["settings"]
    methods: dict[str, Any] = {}
    ran_with: dict[str, Hyperparameters] = {}
    for report in reports:
        differ = [k for k in compared if report["settings"][k] != first[k]]
        if differ:
            raise ValueError(f"reports measured differently: {', '.join(differ)}")
        for name, spec in report["settings"]["methods"].items():
            methods.setdefault(name, spec)
            if ran_with.setdefault(name, effective(report, spec)) != effective(report, spec):
                raise ValueError(
                    f"method {name!r} ran with different hyperparameters in two reports"
                )
    if keep:
        unknown = [name for name in keep if name not in methods]
        if unknown:
            raise ValueError(f"no runs of {', '.join(unknown)} in these reports")
        methods = {name: methods[name] for name in keep}
    # Each method restated against the first sitting's base, so the merged report says what ran
    base = Hyperparameters(**first["hyperparameters"]).model_dump(mode="json")
    methods = {
        name: {
            "method": spec["method"],
            **{k: v for k, v in ran_with[name].model_dump(mode="json").items() if v != base[k]},
        }
        for name, spec in methods.items()
    }
    reference = next(iter(methods))
    rows: dict[str, dict[str, Any]] = {}
    for report in reports:
        same_reference = next(iter(report["settings"]["methods"])) == reference
        for row in report["rows"]:
            merged = rows.setdefault(
                job_name(row["concepts"]),
                {"concepts": row["concepts"], "curves": {}, "runs": {}},
            )
            if same_reference and "pictures_for_5_points_paired" not in merged:
                merged["pictures_for_5_points_paired"] = row["pictures_for_5_points_paired"]
            for name, curve in row["curves"].items():
                if name in methods:
                    merged["curves"].setdefault(name, curve)
                    merged["runs"].setdefault(name, row["runs"][name])
    single = []
    for name, row in rows.items():
        missing = [m for m in methods if m not in row["curves"]]
        if missing:
            raise ValueError(f"job {name} has no runs of {', '.join(missing)}")
        equal = equal_erasure_with_ci(
            {
                method: Curve(
                    steps=raw["steps"],
                    tallies=[[Tally.from_dict(t) for t in run] for run in raw["tallies"]],
                )
                for method in methods
                for raw in [row["curves"][method]]
            },
            row["concepts"],
            replicates=first["bootstrap_replicates"],
        )
        row["equal_erasure"] = equal.as_dict()
        row["pictures_for_5_points"] = _pictures_for_five_points(
            equal, first["evaluation"]["images_per_caption"]
        )
        if len(row["concepts"]) == 1:
            single.append(equal)
    return {
        "settings": {**first, "methods": methods, "jobs": [r["concepts"] for r in rows.values()]},
        "merged_from": len(reports),
        "rows": list(rows.values()),
        "mean_over_single_concepts": _mean_row(single, list(methods)),
        "wall_time_s": sum(r["wall_time_s"] for r in reports),
        "cpu_s": {k: sum(r["cpu_s"][k] for r in reports) for k in ("train", "judge")},
    }


def _cell(interval: dict[str, float]) -> str:
    return str(Interval(interval["estimate"], interval["low"], interval["high"]))


def markdown_table(report: dict[str, Any]) -> str:
    methods = list(report["settings"]["methods"])
    reference = methods[0]
    header = ["job", "ESR compared"]
    for name in methods:
        header += [f"{name} PSR [95% CI]"]
    for name in methods[1:]:
        header += [f"{name} − {reference}"]
    header += [f"worst-hit kept ({name})" for name in methods]
    header += ["final ESR"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        eq = row["equal_erasure"]
        cells = [job_name(row["concepts"]), f"{eq['esr']['estimate']:.1f}"]
        cells += [_cell(eq["psr"][m]) for m in methods]
        cells += [_cell(eq["difference"][m]) for m in methods[1:]]
        for m in methods:
            worst = eq["worst_hit"][m]
            cells.append(
                f"{worst['concept']} {worst['base']:.0f}→{worst['accuracy']['estimate']:.0f}"
            )
        cells.append(", ".join(f"{m} {eq['final_esr'][m]['estimate']:.0f}" for m in methods))
        lines.append("| " + " | ".join(cells) + " |")
    mean = report.get("mean_over_single_concepts")
    if mean:
        cells = [f"mean of {mean['jobs']} single concepts", ""]
        cells += [_cell(mean["psr"][m]) for m in methods]
        cells += [_cell(mean["difference"][m]) for m in methods[1:]]
        cells += [""] * (len(methods) + 1)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
