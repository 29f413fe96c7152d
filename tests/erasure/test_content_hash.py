"""The model content hash names the exact files a run used; with a cache directory an unchanged
folder is not read again, and any changed file changes the hash."""

import os
import shutil
from pathlib import Path

import pytest

from core.erasure import models
from core.erasure.models import CONTENT_HASH_DIR, content_hash


@pytest.fixture
def model(tiny_model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    return copy


def _never_read(folder: Path, files: list[Path]) -> str:
    raise AssertionError(f"{folder} was read again")


def test_cached_hash_equals_the_full_hash_and_is_reused(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    full = content_hash(model)
    assert content_hash(model, cache) == full
    assert len(list((cache / CONTENT_HASH_DIR).iterdir())) == 1
    monkeypatch.setattr(models, "_hash_files", _never_read)
    assert content_hash(model, cache) == full


def test_a_changed_weight_file_changes_the_hash(model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = content_hash(model, cache)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    weights.write_bytes(bytes(data))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks
    after = content_hash(model, cache)
    assert after != before
    assert after == content_hash(model)


def test_an_added_file_changes_the_hash(model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = content_hash(model, cache)
    (model / "sampling_defaults.json").write_text('{"guidance_scale": 3.0}')
    assert content_hash(model, cache) != before
