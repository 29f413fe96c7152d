"""Turn a job's model *name* into something the engine can load, on this worker.

The registry (`core.registry`) maps names to diffusers folders or hub ids. The one case that
needs the worker is the built-in `demo` model when no bundled copy ships: the worker generates a
tiny random-weight pipeline once under the data dir (the API cannot, it never imports torch).
"""

import shutil
import tempfile
from pathlib import Path

from core.erasure.types import ModelNotFoundError
from core.registry import ModelSourceKind, UnknownModelError, resolve_model
from core.settings import Settings

# The generated demo model is fixed, so every worker (and every re-generation) builds the same one.
DEMO_MODEL_SEED = 0


def engine_model_source(settings: Settings, name: str) -> str:
    """The folder or hub id to hand the engine, generating the demo model if it is due."""
    try:
        model = resolve_model(settings, name)
    except UnknownModelError as error:
        raise ModelNotFoundError(f"model {name!r} is not registered on this worker") from error
    if model.kind is ModelSourceKind.GENERATED:
        return str(_ensure_generated_demo(Path(model.source)))
    return model.source


def _ensure_generated_demo(target: Path) -> Path:
    """Build the demo pipeline into `target` unless it is there; safe with workers in parallel."""
    if (target / "model_index.json").is_file():
        return target
    from core.erasure.tiny import make_tiny_model  # torch: only where a model must be built

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        make_tiny_model(staging / "model", arch="tiny", seed=DEMO_MODEL_SEED)
        try:
            (staging / "model").rename(target)  # atomic; fails if another worker got there first
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
