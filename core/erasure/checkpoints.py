"""Checkpoints: `checkpoints/checkpoint-<step>/` with θ' of the trained subset (safetensors) and
the rest of the run state (optimizers, π, RNG states, step, log). Written into a hidden temp folder
and renamed into place, so a folder named `checkpoint-<step>` is always complete."""

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from core.erasure.types import CheckpointError, CheckpointMismatchError

CHECKPOINTS_DIR = "checkpoints"
_PREFIX = "checkpoint-"
_TRAINED = "trained_subset.safetensors"
_STATE = "state.pt"
_FINGERPRINT = "fingerprint.json"


def _global_rng_states() -> dict[str, Any]:
    """Process-wide RNG states. The run itself draws only from its own generator; these are
    saved so that anything else seeded from them (a library's init) also continues identically."""
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_global_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = json.loads(states["python"])
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_folders(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temp folders start with '.' and are skipped)."""
    root = out_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        step = folder.name.removeprefix(_PREFIX)
        if folder.is_dir() and folder.name.startswith(_PREFIX) and step.isdigit():
            found.append((int(step), folder))
    return sorted(found)


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A hidden temp folder next to the final one (same filesystem, so rename is atomic);
    removed if anything fails before the rename."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_checkpoint(
    out_dir: Path,
    step: int,
    trained: dict[str, torch.Tensor],
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint-<step> atomically, then prune to the newest `keep`."""
    root = out_dir / CHECKPOINTS_DIR
    final = root / f"{_PREFIX}{step}"
    with _staging(root) as staging:
        save_file({k: v.contiguous().cpu() for k, v in trained.items()}, staging / _TRAINED)
        torch.save({**state, "rng": _global_rng_states()}, staging / _STATE)
        (staging / _FINGERPRINT).write_text(json.dumps(fingerprint, indent=2, sort_keys=True))
        if final.exists():  # a resumed run reached this step again: replace it
            shutil.rmtree(final)
        staging.rename(final)
    for _, old in checkpoint_folders(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest_checkpoint(
    out_dir: Path, fingerprint: dict[str, Any], device: torch.device
) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
    """(step, θ', state) of the newest complete checkpoint, or None when there is none.

    Refuses a checkpoint of a different run (other model, concepts or hyperparameters): continuing
    it would silently mix two configurations."""
    folders = checkpoint_folders(out_dir)
    if not folders:
        return None
    step, folder = folders[-1]
    try:
        saved = json.loads((folder / _FINGERPRINT).read_text())
        trained = load_file(folder / _TRAINED, device=str(device))
        state = torch.load(folder / _STATE, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {folder} is unreadable ({error}); delete it") from error
    if saved != fingerprint:
        keys = fingerprint.keys() | saved.keys()
        changed = sorted(k for k in keys if saved.get(k) != fingerprint.get(k))
        raise CheckpointMismatchError(
            f"{folder} belongs to a run with other settings ({', '.join(changed)}); "
            "resume with the original settings, or start over in a fresh output folder "
            "(or without resuming, which deletes these checkpoints)"
        )
    _restore_global_rng_states(state.pop("rng"))
    return step, trained, state
