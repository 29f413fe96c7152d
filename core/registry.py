"""The operator's base models: jobs name one of these, never a path.

Two sources, merged: `Settings.models` (environment, e.g. `ERASER_MODELS={"sd15": "/models/sd15"}`)
and a registry file `<data_dir>/models.json` managed with `eraser models add|remove`. Settings
win on a name clash, so a deployment's environment is the last word.

Each model may name the evaluator that judges its jobs (`judge`, `nudenet`,
`clip:/folder`): `eraser models add NAME SOURCE --evaluator SPEC`, or
`ERASER_MODEL_EVALUATORS`. The built-in `demo` model is judged by the toy world's `judge`.

The built-in `demo` model is the diffusers folder `core/assets/demo/` when it is shipped. Where it
is not, the worker builds a tiny model once under `<data_dir>/models/demo` (the API cannot: it
never imports torch), so `demo` is always submittable.
"""

import dataclasses
import json
import os
import re
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import click

from core.settings import Settings, get_settings

DEMO_MODEL = "demo"
DEMO_EVALUATOR = "judge"
EVALUATOR_NAMES = ("judge", "nudenet", "clip")
BUNDLED_DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo"
REGISTRY_FILE_NAME = "models.json"
# Names appear in URLs, logs and job rows: keep them short and unambiguous.
MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ModelSourceKind(StrEnum):
    FOLDER = "folder"  # a diffusers pipeline folder on the worker's disk
    HUB = "hub"  # a hub id, for workers that can reach the hub
    GENERATED = "generated"  # the demo fallback, built by the worker on first use


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    source: str
    kind: ModelSourceKind
    # Whether this process can see the model. Folders live on workers, which may be other
    # machines, so False here is a hint to the operator, not a reason to refuse a job.
    available: bool
    evaluator: str | None = None  # spec of the evaluation stage's evaluator; None: not evaluated

    @property
    def evaluator_name(self) -> str | None:
        return None if self.evaluator is None else self.evaluator.partition(":")[0]


class UnknownModelError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown model {name!r}")
        self.name = name


class InvalidModelNameError(ValueError):
    pass


class InvalidEvaluatorError(ValueError):
    pass


def check_evaluator(spec: str) -> str:
    """`judge`, `nudenet[:THRESHOLD]` or `clip:FOLDER` (resolved); else InvalidEvaluatorError."""
    name, _, argument = spec.strip().partition(":")
    if name not in EVALUATOR_NAMES:
        raise InvalidEvaluatorError(
            f"unknown evaluator {spec!r}: use judge, nudenet[:THRESHOLD] or clip:FOLDER"
        )
    if name == "clip":
        if not argument:
            raise InvalidEvaluatorError("clip needs the folder of a CLIP model: clip:FOLDER")
        return f"clip:{Path(argument).expanduser().resolve()}"
    if name == "nudenet" and argument:
        try:
            threshold = float(argument)
        except ValueError:
            threshold = -1.0
        if not 0 < threshold < 1:
            raise InvalidEvaluatorError(f"nudenet's threshold is in (0, 1), got {argument!r}")
        return f"nudenet:{threshold}"
    if argument:
        raise InvalidEvaluatorError(f"the judge takes no argument, got {spec!r}")
    return name


def demo_fallback_dir(settings: Settings) -> Path:
    """Where the worker generates the demo model when none is bundled."""
    return settings.resolved_data_dir / "models" / DEMO_MODEL


def registry_file(settings: Settings) -> Path:
    return settings.resolved_data_dir / REGISTRY_FILE_NAME


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def _describe(name: str, source: str) -> RegisteredModel:
    if _looks_like_path(source):
        folder = Path(source).expanduser()
        return RegisteredModel(
            name, str(folder), ModelSourceKind.FOLDER, (folder / "model_index.json").is_file()
        )
    return RegisteredModel(name, source, ModelSourceKind.HUB, True)


def _demo(settings: Settings) -> RegisteredModel:
    if (BUNDLED_DEMO_DIR / "model_index.json").is_file():
        return RegisteredModel(DEMO_MODEL, str(BUNDLED_DEMO_DIR), ModelSourceKind.FOLDER, True)
    return RegisteredModel(
        DEMO_MODEL, str(demo_fallback_dir(settings)), ModelSourceKind.GENERATED, True
    )


def _read_registry_entries(settings: Settings) -> dict[str, Any]:
    """name -> source string, or {"source": ..., "evaluator": ...} for a model with one."""
    path = registry_file(settings)
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {str(name): entry for name, entry in entries.items()}


def _read_registry_file(settings: Settings) -> dict[str, str]:
    return {
        name: str(entry["source"] if isinstance(entry, dict) else entry)
        for name, entry in _read_registry_entries(settings).items()
    }


def _registry_evaluators(settings: Settings) -> dict[str, str]:
    file = {
        name: str(entry["evaluator"])
        for name, entry in _read_registry_entries(settings).items()
        if isinstance(entry, dict) and entry.get("evaluator")
    }
    return {**file, **settings.model_evaluators}


def _write_registry_file(settings: Settings, entries: dict[str, Any]) -> None:
    path = registry_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # temp file + rename: a reader (the API) never sees a half-written registry
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".models-", suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(dict(sorted(entries.items())), handle, indent=2)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def list_models(settings: Settings) -> list[RegisteredModel]:
    entries = {**_read_registry_file(settings), **settings.models}
    models = {name: _describe(name, source) for name, source in entries.items()}
    models.setdefault(DEMO_MODEL, _demo(settings))
    evaluators = {DEMO_MODEL: DEMO_EVALUATOR, **_registry_evaluators(settings)}
    return [
        dataclasses.replace(models[name], evaluator=evaluators.get(name)) for name in sorted(models)
    ]


def resolve_model(settings: Settings, name: str) -> RegisteredModel:
    """The registered model called `name`, or UnknownModelError."""
    for model in list_models(settings):
        if model.name == name:
            return model
    raise UnknownModelError(name)


def add_model(
    settings: Settings, name: str, source: str, evaluator: str | None = None
) -> RegisteredModel:
    if not MODEL_NAME_PATTERN.match(name):
        raise InvalidModelNameError(
            f"model names are lowercase letters, digits, '.', '_' or '-' (≤64): {name!r}"
        )
    if _looks_like_path(source):
        source = str(Path(source).expanduser().resolve())
    spec = None if evaluator is None else check_evaluator(evaluator)
    entries = _read_registry_entries(settings)
    entries[name] = source if spec is None else {"source": source, "evaluator": spec}
    _write_registry_file(settings, entries)
    return dataclasses.replace(_describe(name, source), evaluator=spec)


def remove_model(settings: Settings, name: str) -> bool:
    entries = _read_registry_entries(settings)
    if entries.pop(name, None) is None:
        return False
    _write_registry_file(settings, entries)
    return True


@click.group("models")
def models_cli() -> None:
    """The base models jobs may name."""


@models_cli.command("list")
def list_command() -> None:
    """Print every registered model: name, kind, availability here, source."""
    for model in list_models(get_settings()):
        availability = "available" if model.available else "missing-here"
        evaluator = model.evaluator or "no-evaluator"
        click.echo(f"{model.name}\t{model.kind.value}\t{availability}\t{model.source}\t{evaluator}")


@models_cli.command("add")
@click.argument("name")
@click.argument("source")
@click.option(
    "--evaluator",
    default=None,
    help="What judges this model's jobs after training: judge, nudenet or clip:FOLDER "
    "(a transformers CLIP model). Without one, jobs end with acceptance not_evaluated.",
)
def add_command(name: str, source: str, evaluator: str | None) -> None:
    """Register NAME as a diffusers folder or hub id SOURCE."""
    try:
        model = add_model(get_settings(), name, source, evaluator)
    except InvalidModelNameError as error:
        raise click.BadParameter(str(error), param_hint="NAME") from error
    except InvalidEvaluatorError as error:
        raise click.BadParameter(str(error), param_hint="--evaluator") from error
    suffix = f", evaluator {model.evaluator}" if model.evaluator else ""
    click.echo(f"registered {model.name} -> {model.source} ({model.kind.value}{suffix})")


@models_cli.command("remove")
@click.argument("name")
def remove_command(name: str) -> None:
    """Unregister NAME (from the registry file; names set in the environment stay)."""
    if not remove_model(get_settings(), name):
        raise click.ClickException(f"no model {name!r} in {registry_file(get_settings())}")
    click.echo(f"removed {name}")
