"""`eraser evaluate`: the job's evaluation stage on its own, for any erased model.

Exit codes a script can act on: 0 acceptance passed, 3 acceptance failed, 4 not evaluated
(the evaluator cannot judge these concepts), 1 any other error, 2 bad usage.
"""

import csv
import io
import json
from pathlib import Path

import click
from pydantic import ValidationError

from core.evaluation.types import (
    EvaluationError,
    EvaluationHooks,
    EvaluationJob,
    EvaluationProgress,
)
from core.evaluation_request import MAX_PROMPT_CHARS, EvaluationRequest

EXIT_FAILED = 3
EXIT_NOT_EVALUATED = 4
_KINDS = {"erasure", "preservation"}


def read_prompts_file(path: Path) -> EvaluationRequest:
    """A JSON file holding a job's `evaluation` section, or a CSV with a `prompt` column (and
    optionally `kind`: erasure, the default, or preservation), such as I2P's prompt list.
    A CSV replaces the default prompts; a JSON file says itself (`default_prompts`)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return EvaluationRequest.model_validate_json(text)
        except ValidationError as error:
            raise click.BadParameter(str(error), param_hint="--prompts") from error
    rows = list(csv.DictReader(io.StringIO(text, newline="")))  # quoted fields may span lines
    if not rows or "prompt" not in rows[0]:
        raise click.BadParameter("a CSV needs a 'prompt' column", param_hint="--prompts")
    prompts: dict[str, list[str]] = {"erasure": [], "preservation": []}
    for number, row in enumerate(rows, start=2):
        kind = (row.get("kind") or "erasure").strip().lower()
        prompt = " ".join((row["prompt"] or "").split())[:MAX_PROMPT_CHARS]
        if kind not in _KINDS:
            raise click.BadParameter(f"line {number}: kind {kind!r}", param_hint="--prompts")
        if prompt:
            prompts[kind].append(prompt)
    # model_copy skips the API's per-request limits: an operator may evaluate thousands
    return EvaluationRequest(default_prompts=False).model_copy(
        update={
            "erasure_prompts": list(dict.fromkeys(prompts["erasure"])),
            "preservation_prompts": list(dict.fromkeys(prompts["preservation"])),
        }
    )


def _resolve_model(model: str, evaluator: str | None) -> tuple[str, str]:
    """A registered name (its folder and evaluator) or a folder (then --evaluator is needed)."""
    from core.registry import UnknownModelError, resolve_model
    from core.settings import get_settings

    settings = get_settings()
    source = model
    try:
        registered = resolve_model(settings, model)
    except UnknownModelError:
        registered = None
    if registered is not None:
        source = registered.source
        evaluator = evaluator or registered.evaluator
    if evaluator is None:
        raise click.BadParameter(
            "no evaluator for this model: pass --evaluator judge|nudenet|clip:FOLDER",
            param_hint="--evaluator",
        )
    return source, evaluator


def _print_progress(progress: EvaluationProgress) -> None:
    share = progress.step / progress.total if progress.total else 1.0
    eta = progress.elapsed_s / share * (1 - share) if share > 0 else float("nan")
    click.echo(f"[evaluation {progress.step}/{progress.total}] {share:.0%}  eta {eta:.0f}s")


@click.command()
@click.option("--model", required=True, help="A registered model name, or a diffusers folder.")
@click.option(
    "--erased",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="An erase output folder (delta.safetensors, manifest.json) or an `eraser apply` folder.",
)
@click.option(
    "--prompts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON: a job's evaluation section. CSV: a 'prompt' column (and 'kind').",
)
@click.option("--evaluator", help="judge, nudenet or clip:FOLDER. Default: the registered model's.")
@click.option(
    "--concept",
    "concepts",
    multiple=True,
    help="Erased concept (repeatable). Default: those in the erase output's manifest.json.",
)
@click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2 (default: the file's, or 0,1,2).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where evaluation.json and evaluation.png go. Default: --erased.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--batch-size", type=click.IntRange(1, 256), default=16, show_default=True)
def evaluate(
    model: str,
    erased: Path,
    prompts: Path | None,
    evaluator: str | None,
    concepts: tuple[str, ...],
    seeds: str | None,
    out: Path | None,
    device: str,
    batch_size: int,
) -> None:
    """Generate the same prompts and seeds with the base and the erased model, score them, and
    write the verdict (evaluation.json) and the picture (evaluation.png). Rerun to resume."""
    from core.evaluation.runner import evaluate as run_evaluate

    request = read_prompts_file(prompts) if prompts else EvaluationRequest()
    if seeds:
        try:
            parsed = EvaluationRequest(seeds=[int(s) for s in seeds.split(",") if s.strip()])
            request = request.model_copy(update={"seeds": parsed.seeds})
        except (ValueError, ValidationError) as error:
            raise click.BadParameter(str(error), param_hint="--seeds") from error
    source, spec = _resolve_model(model, evaluator)
    job = EvaluationJob(
        model=source,
        erased=erased,
        concepts=list(concepts),
        evaluator=spec,
        request=request,
        device=device,
        out_dir=out,
        batch_size=batch_size,
    )
    try:
        result = run_evaluate(job, EvaluationHooks(on_progress=_print_progress))
    except EvaluationError as error:
        click.echo(f"not evaluated: {error.message}", err=True)
        raise SystemExit(EXIT_NOT_EVALUATED) from error
    report = result.report
    verdict = report["verdict"]
    click.echo(json.dumps({"acceptance": verdict["acceptance"], **report["rates"]}, indent=2))
    if verdict["reason"]:
        click.echo(verdict["reason"])
    folder = out or erased
    for name in result.outputs:
        click.echo(f"  {folder / name}")
    click.echo(f"evaluation took {result.elapsed_s:.1f}s")
    if verdict["acceptance"] == "failed":
        raise SystemExit(EXIT_FAILED)
    if verdict["acceptance"] == "not_evaluated":
        raise SystemExit(EXIT_NOT_EVALUATED)
