"""`eraser erase`, `eraser apply`, `eraser make-tiny-model`.

The hyperparameter flags are generated from `core.hyperparameters.Hyperparameters`, so the CLI,
the API and the engine share one definition of every knob, default and range."""

import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from core.erasure.types import ErasureConfig, ErasureError, Hooks, Progress
from core.hyperparameters import Hyperparameters, Method, Precision, TrainMethod

_CLICK_TYPES: dict[type, click.ParamType] = {int: click.INT, float: click.FLOAT, bool: click.BOOL}


def _option_type(info: FieldInfo) -> click.ParamType:
    annotation = info.annotation
    optional = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) and len(optional) == 1:
        annotation = optional[0]  # `X | None`: None is the flag's absence
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return click.Choice([m.value for m in annotation])
    assert isinstance(annotation, type)
    return _CLICK_TYPES[annotation]


def _hyperparameter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One `--name` flag per Hyperparameters field; unset flags keep the model's default."""
    for name, info in reversed(Hyperparameters.model_fields.items()):
        default = info.default.value if isinstance(info.default, Enum) else info.default
        default = "the method's own" if default is None else default
        command = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=_option_type(info),
            default=None,
            help=f"{info.description} [default: {default}]",
        )(command)
    return command


def _print_progress(progress: Progress) -> None:
    losses = " ".join(f"{k}={v:.4g}" for k, v in progress.losses.items())
    drawn = ", ".join(f"{c} → {w}" for c, w in progress.adversarial_concepts.items())
    click.echo(
        f"[{progress.step}/{progress.total}] {losses}"
        + (f" | adversarial: {drawn}" if drawn else "")
        + f" | {progress.elapsed_s:.1f}s"
    )


def _run_default(name: str) -> Any:
    """An ErasureConfig field's default, so the CLI never restates it."""
    default = ErasureConfig.model_fields[name].default
    return default.value if isinstance(default, Enum) else default


def _choices(enum: type[Enum]) -> click.Choice:
    return click.Choice([m.value for m in enum])


@click.command()
@click.option("--model", required=True, help="A diffusers pipeline folder (or a hub id).")
@click.option(
    "--concept", "concepts", multiple=True, required=True, help="Concept to erase (repeatable)."
)
@click.option("--method", type=_choices(Method), default=_run_default("method"), show_default=True)
@click.option(
    "--train-method",
    type=_choices(TrainMethod),
    default=_run_default("train_method"),
    show_default=True,
)
@_hyperparameter_options
@click.option("--seed", type=int, default=_run_default("seed"), show_default=True)
@click.option(
    "--device", default=_run_default("device"), show_default=True, help="auto, cpu, cuda, cuda:N."
)
@click.option(
    "--precision", type=_choices(Precision), default=_run_default("precision"), show_default=True
)
@click.option(
    "--vocabulary",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Candidate concepts, one per line (default: whole words of the model's tokenizer).",
)
@click.option(
    "--sample-prompt", "sample_prompts", multiple=True, help="Control prompt for the grid."
)
@click.option(
    "--checkpoint-every", type=int, default=_run_default("checkpoint_every"), show_default=True
)
@click.option(
    "--checkpoint-total-limit",
    type=int,
    default=_run_default("checkpoint_total_limit"),
    show_default=True,
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ERASER_CACHE_DIR",
    default=Path.home() / ".cache" / "eraser",
    show_default=True,
    help="Where vocabulary embeddings are cached per (model, vocabulary) and reused by later runs.",
)
@click.option(
    "--grid-steps",
    type=int,
    help="DDIM steps for the sample grid. Default: the model's sampling_defaults.json, else 25.",
)
@click.option(
    "--grid-guidance",
    type=float,
    help="CFG scale for the sample grid. Default: the model's sampling_defaults.json, else 7.5.",
)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def erase(**options: Any) -> None:
    """Erase concepts from a Stable Diffusion model with AP (or ESD)."""
    from core.erasure.runner import erase as run_erase
    from core.erasure.vocabulary import read_vocabulary_file

    hyperparameters = {
        name: options.pop(name)
        for name in Hyperparameters.model_fields
        if options.get(name) is not None
    }
    for name in Hyperparameters.model_fields:
        options.pop(name, None)
    out, resume = options.pop("out"), options.pop("resume")
    vocabulary_file = options.pop("vocabulary")
    concepts, sample_prompts = list(options.pop("concepts")), list(options.pop("sample_prompts"))
    try:
        config = ErasureConfig(
            **options,
            concepts=concepts,
            sample_prompts=sample_prompts,
            hyperparameters=Hyperparameters(**hyperparameters),
            vocabulary=read_vocabulary_file(vocabulary_file) if vocabulary_file else None,
        )
    except ValidationError as error:
        raise click.BadParameter(str(error)) from error
    try:
        result = run_erase(config, out, Hooks(on_progress=_print_progress), resume=resume)
    except ErasureError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from error
    click.echo(f"{result.status}: {result.steps_completed}/{result.total_steps} updates")
    for name in result.outputs:
        click.echo(f"  {out / name}")


@click.command()
@click.option("--model", required=True, help="The base diffusers pipeline folder (or hub id).")
@click.option(
    "--delta", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def apply(model: str, delta: Path, out: Path) -> None:
    """Write base model + delta.safetensors as an erased diffusers pipeline folder."""
    from core.erasure.apply import apply_delta, delta_base_hash
    from core.erasure.models import content_hash, local_folder

    try:
        click.echo(apply_delta(model, delta, out))
        trained_on = delta_base_hash(delta)
        if trained_on and trained_on != content_hash(local_folder(model)):
            click.echo(
                "warning: the delta was trained on a base model with other files "
                f"(content hash {trained_on[:12]}…); check that this is the intended base",
                err=True,
            )
    except ErasureError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from error


@click.command("make-tiny-model")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["tiny", "sd14"]), default="tiny", show_default=True)
@click.option("--seed", type=int, default=_run_default("seed"), show_default=True)
def make_tiny_model(path: Path, arch: str, seed: int) -> None:
    """Write a random-weight Stable Diffusion pipeline (offline tokenizer included)."""
    from core.erasure.tiny import make_tiny_model as make

    click.echo(make(path, arch=arch, seed=seed))
