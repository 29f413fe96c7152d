"""Fixtures of the worker tests: a tiny random-weight diffusers pipeline, built offline once per
session, and one torch thread for engine runs in this process (the CPU is shared)."""

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import torch

    from core.erasure.tiny import make_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)
    finally:
        torch.set_num_threads(threads)
