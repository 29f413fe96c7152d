"""Typed errors a user can act on (model not found, bad concept, out of memory)."""

from pathlib import Path

import pytest
import torch
from erasure_helpers import fast_config

from core.erasure.models import translate_oom
from core.erasure.runner import erase
from core.erasure.types import BadConceptError, ModelNotFoundError, OutOfMemoryError


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"does-not-exist.*does not exist"):
        erase(fast_config(tmp_path / "does-not-exist"), tmp_path / "out")


def test_folder_that_is_not_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"model_index\.json"):
        erase(fast_config(tmp_path / "empty"), tmp_path / "out")


@pytest.mark.parametrize("concept", ["", "   ", "cat " * 80])
def test_bad_concepts(tiny_model: Path, tmp_path: Path, concept: str) -> None:
    with pytest.raises(BadConceptError):
        erase(fast_config(tiny_model, concepts=[concept]), tmp_path)
    assert not (tmp_path / "delta.safetensors").exists()


def test_out_of_memory_is_translated() -> None:
    with (
        pytest.raises(OutOfMemoryError, match="xattn") as caught,
        translate_oom(torch.device("cpu")),
    ):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert caught.value.code == "out_of_memory"


def test_cpu_allocator_out_of_memory_is_translated() -> None:
    with pytest.raises(OutOfMemoryError), translate_oom(torch.device("cpu")):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )
    with pytest.raises(RuntimeError, match="shape mismatch"), translate_oom(torch.device("cpu")):
        raise RuntimeError("shape mismatch")  # other errors pass through unchanged
