"""Fixtures for the engine's tests: one tiny random SD pipeline per session, built offline."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core.erasure.tiny import make_tiny_model


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """The CPU is shared: one thread per test process (also makes timings steadier)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
