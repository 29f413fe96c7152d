"""Fixtures of the evaluation stage's tests: a tiny SD model and a perturbed copy as the
"erased" model, built offline once per session."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from evaluation_helpers import make_erased_output

from core.erasure.tiny import make_tiny_model


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def erased(tiny_sd: Path, tmp_path: Path) -> Path:
    return make_erased_output(tiny_sd, tmp_path / "erased", ["cat"])
