"""Fixtures of the worker tests: a tiny random-weight diffusers pipeline (built offline once per
session) and the job settings that make a real engine run take seconds on a CPU."""

from pathlib import Path
from typing import Any

import pytest

# Few updates, a 4-step DDIM sampler and a small candidate set: every code path of a real AP run,
# in seconds. Checkpoints every 5 updates (the worker's setting) give resume something to find.
FAST_HYPERPARAMETERS: dict[str, Any] = {
    "iterations": 20,
    "ddim_steps": 4,
    "k_closest": 50,
    "num_centers": 5,
    "vocabulary_size": 200,
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.erasure.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)
