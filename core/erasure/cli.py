"""`eraser erase`, `eraser apply`, `eraser make-tiny-model`.

The hyperparameter flags are generated from `core.hyperparameters.Hyperparameters`, so the CLI,
the API and the engine share one definition of every knob, default and range. Every flag is
checked before torch and diffusers are imported (seconds), so a typo fails at once, naming the
flag. `--model` takes the service's registered names (`demo` included) as well as folders."""

import re
import time
import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import annotated_types
import click
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from core.erasure.quiet import quiet_libraries
from core.erasure.types import ErasureConfig, ErasureError, ErasureResult, Hooks, Progress
from core.hyperparameters import Hyperparameters, Method, Precision, TrainMethod

_PROGRESS_EVERY_S = 1.0  # at most one progress line a second (plus the first and the last)


def _range(info: FieldInfo, integer: bool) -> click.ParamType:
    """A click range with the field's bounds, so click refuses `--lr 0` naming the flag."""
    bounds: dict[str, Any] = {}
    for constraint in info.metadata:
        if isinstance(constraint, annotated_types.Ge):
            bounds["min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Gt):
            bounds |= {"min": constraint.gt, "min_open": True}
        elif isinstance(constraint, annotated_types.Le):
            bounds["max"] = constraint.le
        elif isinstance(constraint, annotated_types.Lt):
            bounds |= {"max": constraint.lt, "max_open": True}
    if integer:
        return click.IntRange(**bounds)
    return click.FloatRange(**bounds)


def _option_type(info: FieldInfo) -> click.ParamType:
    annotation = info.annotation
    optional = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) and len(optional) == 1:
        annotation = optional[0]  # `X | None`: None is the flag's absence
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return click.Choice([m.value for m in annotation])
    if annotation is bool:
        return click.BOOL
    assert annotation is int or annotation is float, annotation
    return _range(info, integer=annotation is int)


def _hyperparameter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One `--name` flag per Hyperparameters field; unset flags keep the model's default."""
    for name, info in reversed(Hyperparameters.model_fields.items()):
        default = info.default.value if isinstance(info.default, Enum) else info.default
        # A None default is explained by the description ("None = ...")
        shown = "" if default is None else f" [default: {default}]"
        command = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=_option_type(info),
            default=None,
            help=f"{info.description}{shown}",
        )(command)
    return command


def _flag(field: str) -> str:
    """The flag that sets an ErasureConfig or Hyperparameters field."""
    return {"concepts": "--concept", "sample_prompts": "--sample-prompt"}.get(
        field, f"--{field.replace('_', '-')}"
    )


def _flag_errors(error: ValidationError) -> click.UsageError:
    """pydantic's report, in the command line's words: which flag, what is wrong with it."""
    lines = []
    for problem in error.errors():
        fields = [str(part) for part in problem["loc"] if isinstance(part, str)]
        flag = _flag(fields[-1]) if fields else "a flag"
        lines.append(f"Invalid value for '{flag}': {problem['msg']}")
    return click.UsageError("\n".join(lines))


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressLine:
    """`[12/100]  12% | ETA 1m30s | erase=… | adversarial: …`, at most once a second.

    The ETA is the average time per update so far (across a resume: the checkpoint keeps the
    training time) times the updates left."""

    def __init__(self, echo: Callable[[str], None] = click.echo) -> None:
        self._echo = echo
        self._last_line = float("-inf")

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        first_or_last = self._last_line == float("-inf") or progress.step >= progress.total
        if not first_or_last and now - self._last_line < _PROGRESS_EVERY_S:
            return
        self._last_line = now
        self._echo(format_progress(progress))


def format_progress(progress: Progress) -> str:
    percent = 100 * progress.step // max(progress.total, 1)
    left = progress.elapsed_s / max(progress.step, 1) * (progress.total - progress.step)
    losses = " ".join(f"{k}={v:.4g}" for k, v in progress.losses.items())
    drawn = ", ".join(f"{c} → {w}" for c, w in progress.adversarial_concepts.items())
    return (
        f"[{progress.step}/{progress.total}] {percent:3d}% | ETA {_duration(left)} "
        f"| {_duration(progress.elapsed_s)} elapsed | {losses}"
        + (f" | adversarial: {drawn}" if drawn else "")
    )


def _run_default(name: str) -> Any:
    """An ErasureConfig field's default, so the CLI never restates it."""
    default = ErasureConfig.model_fields[name].default
    return default.value if isinstance(default, Enum) else default


def _choices(enum: type[Enum]) -> click.Choice:
    return click.Choice([m.value for m in enum])


class DeviceType(click.ParamType):
    """auto, cpu, cuda or cuda:N: checked here, not after loading the model."""

    name = "device"
    _PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "[auto|cpu|cuda|cuda:N]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not self._PATTERN.match(str(value)):
            self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N (e.g. cuda:1)", param, ctx)
        return str(value)


def resolve_model(value: str) -> tuple[str, str | None]:
    """(what the engine loads, the registry name or None): a name registered with the service
    (`eraser models list`, `demo` built in) wins; anything else is a folder or hub id."""
    from core.registry import ModelSourceKind, UnknownModelError
    from core.registry import resolve_model as registered
    from core.settings import get_settings

    try:
        model = registered(get_settings(), value)
    except UnknownModelError:
        return value, None
    if model.kind is ModelSourceKind.GENERATED:
        raise click.BadParameter(
            f"{value!r} is registered but not built on this machine: the demo model is not "
            "bundled in this install; run a job on the service once, or pass a folder",
            param_hint="'--model'",
        )
    return model.source, model.name


_MODEL_HELP = (
    "a registered model name (`eraser models list`; `demo` is built in), "
    "else a diffusers pipeline folder (or a hub id)."
)


@click.command()
@click.option("--model", required=True, help="The model: " + _MODEL_HELP)
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
@click.option(
    "--seed",
    type=int,
    default=_run_default("seed"),
    show_default=True,
    help="Seeds training's noise and timesteps and the sample grid: same seed, same delta.",
)
@click.option(
    "--device",
    type=DeviceType(),
    default=_run_default("device"),
    show_default=True,
    help="auto: cuda when present, else cpu.",
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
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=_run_default("checkpoint_every"),
    show_default=True,
    help="Updates between checkpoints in OUT/checkpoints (0: none). The last update is always "
    "checkpointed too, so --resume can continue with more --iterations.",
)
@click.option(
    "--checkpoint-total-limit",
    type=click.IntRange(min=1),
    default=_run_default("checkpoint_total_limit"),
    show_default=True,
    help="Checkpoints kept (the newest).",
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
    type=click.IntRange(min=1),
    help="DDIM steps for the sample grid. Default: the model's sampling_defaults.json, else 25.",
)
@click.option(
    "--grid-guidance",
    type=click.FloatRange(min=0),
    help="CFG scale for the sample grid. Default: the model's sampling_defaults.json, else 7.5.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the newest checkpoint in --out, with the settings that wrote it "
    "(--iterations may grow). Without it, old checkpoints in --out are deleted.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: delta.safetensors, unet/, manifest.json, samples.png, checkpoints/ …",
)
def erase(**options: Any) -> None:
    """Erase concepts from a Stable Diffusion model with AP (or ESD)."""
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
    model, model_name = resolve_model(options.pop("model"))
    try:
        config = ErasureConfig(
            **options,
            model=model,
            model_name=model_name,
            concepts=concepts,
            sample_prompts=sample_prompts,
            hyperparameters=Hyperparameters(**hyperparameters),
        )
    except ValidationError as error:
        raise _flag_errors(error) from error

    # Everything the user typed is valid: only now pay for torch and diffusers.
    quiet_libraries()
    from core.erasure.checkpoints import CHECKPOINTS_DIR, checkpoint_folders
    from core.erasure.runner import erase as run_erase
    from core.erasure.vocabulary import read_vocabulary_file

    if vocabulary_file:
        config = config.model_copy(update={"vocabulary": read_vocabulary_file(vocabulary_file)})
    if resume and not checkpoint_folders(out):
        click.echo(f"--resume: no checkpoint in {out / CHECKPOINTS_DIR}; starting from step 1")

    def on_resume(step: int) -> None:
        click.echo(f"resumed from step {step} ({out / CHECKPOINTS_DIR})")

    hooks = Hooks(on_progress=ProgressLine(), on_resume=on_resume)
    try:
        result = run_erase(config, out, hooks, resume=resume)
    except ErasureError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from error
    _report(result, out)


def _report(result: ErasureResult, out: Path) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    click.echo(
        f"{result.status}: {result.steps_completed}/{result.total_steps} updates{resumed} "
        f"in {_duration(result.wall_time_s)}"
    )
    for name in result.outputs:
        click.echo(f"  {out / name}")


@click.command()
@click.option("--model", required=True, help="The base model: " + _MODEL_HELP)
@click.option(
    "--delta",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A delta.safetensors from `eraser erase` or a job's artifacts.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the erased diffusers pipeline (base + delta).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply even if the delta was trained on another base (refused otherwise).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ERASER_CACHE_DIR",
    default=Path.home() / ".cache" / "eraser",
    show_default=True,
    help="Where model content hashes are remembered (checking the base reads it once).",
)
def apply(model: str, delta: Path, out: Path, force: bool, cache_dir: Path) -> None:
    """Write base model + delta.safetensors as an erased diffusers pipeline folder.

    A delta applies to the base it was trained on only (the manifest's base_model: the
    registered name and its content hash)."""
    source, _ = resolve_model(model)
    quiet_libraries()
    from core.erasure.apply import apply_delta, check_base, delta_origin
    from core.erasure.models import local_folder

    try:
        if force and not check_base(local_folder(source), delta, cache_dir):
            click.echo(
                f"warning: --force: the delta was trained on {delta_origin(delta).describe()}, "
                f"not on {model!r}",
                err=True,
            )
        written = apply_delta(source, delta, out, force=force, cache_dir=cache_dir)
    except ErasureError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from error
    click.echo(f"erased pipeline written to {written}")


@click.command("make-tiny-model")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["tiny", "sd14"]), default="tiny", show_default=True)
@click.option(
    "--seed", type=int, default=_run_default("seed"), show_default=True, help="Seeds the weights."
)
def make_tiny_model(path: Path, arch: str, seed: int) -> None:
    """Write a random-weight Stable Diffusion pipeline (offline tokenizer included)."""
    quiet_libraries()
    from core.erasure.tiny import make_tiny_model as make

    quiet_libraries()  # diffusers' saving bar has no variable, only its switch

    click.echo(make(path, arch=arch, seed=seed))
