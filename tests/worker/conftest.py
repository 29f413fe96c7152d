"""Fixtures of the worker tests: a tiny random-weight diffusers pipeline, built offline once per
session."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.erasure.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)
