"""Helpers for the engine's tests (a uniquely named module: tests are not a package)."""

from pathlib import Path
from typing import Any

import torch

from core.erasure.models import BaseModel, load_base_model
from core.erasure.runner import PreparedRun, prepare
from core.erasure.types import ErasureConfig
from core.hyperparameters import Hyperparameters

# Short runs keep the suite within minutes on two shared cores; the loop is the same at any size.
FAST = {"ddim_steps": 4, "k_closest": 50, "num_centers": 8}


def fast_config(model: Path, **overrides: Any) -> ErasureConfig:
    """A config for a quick run: few DDIM steps, a small candidate set, a 1-step grid."""
    hyper = {**FAST, "iterations": 3, **overrides.pop("hyperparameters", {})}
    fields: dict[str, Any] = {
        "model": str(model),
        "concepts": ["a cat"],
        "device": "cpu",
        "grid_steps": 1,
        "checkpoint_every": 0,
        **overrides,
    }
    return ErasureConfig(hyperparameters=Hyperparameters(**hyper), **fields)


def prepared(config: ErasureConfig) -> tuple[BaseModel, PreparedRun]:
    """The loaded model and the run the engine would train, without training it."""
    base = load_base_model(config.model, torch.device("cpu"))
    return base, prepare(config, base, torch.device("cpu"))
