"""Must show 6 and 7: determinism, resume, cancellation, checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from erasure_helpers import fast_config
from safetensors.torch import load_file

from core.erasure.checkpoints import checkpoint_folders
from core.erasure.runner import erase
from core.erasure.types import CheckpointError, ErasureConfig, Hooks, Progress


def _delta(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "delta.safetensors")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _cancel_after(step: int) -> tuple[Hooks, list[int]]:
    """Hooks that ask to cancel once `step` updates are done, recording progress steps."""
    seen: list[int] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress.step)

    return Hooks(
        on_progress=on_progress, should_cancel=lambda: bool(seen) and seen[-1] >= step
    ), seen


def _config(model: Path, iterations: int, **overrides: object) -> ErasureConfig:
    return fast_config(
        model, hyperparameters={"iterations": iterations}, checkpoint_every=5, **overrides
    )


def test_interrupted_and_resumed_equals_straight(tiny_model: Path, tmp_path: Path) -> None:
    straight = erase(_config(tiny_model, 20), tmp_path / "straight")
    assert straight.status == "succeeded"

    hooks, seen = _cancel_after(10)
    first = erase(_config(tiny_model, 20), tmp_path / "resumed", hooks)
    assert (first.status, first.steps_completed, seen[-1]) == ("cancelled", 10, 10)
    resumed_at: list[int] = []
    second = erase(
        _config(tiny_model, 20),
        tmp_path / "resumed",
        Hooks(on_resume=resumed_at.append),
        resume=True,
    )
    assert (second.status, second.resumed_from, resumed_at) == ("succeeded", 10, [10])
    assert _same(_delta(tmp_path / "straight"), _delta(tmp_path / "resumed"))

    def losses(out: Path) -> list[tuple[float, str]]:
        lines = (out / "training_log.jsonl").read_text().splitlines()
        return [(r["loss"], r["adversarial_concept"]) for r in map(json.loads, lines)]

    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    report = json.loads((tmp_path / "resumed" / "adversarial_concepts.json").read_text())
    assert report == json.loads((tmp_path / "straight" / "adversarial_concepts.json").read_text())


def test_same_seed_same_delta_other_seed_other_delta(tiny_model: Path, tmp_path: Path) -> None:
    erase(_config(tiny_model, 4), tmp_path / "a")
    erase(_config(tiny_model, 4), tmp_path / "b")
    erase(_config(tiny_model, 4, seed=1), tmp_path / "c")
    assert _same(_delta(tmp_path / "a"), _delta(tmp_path / "b"))
    assert not _same(_delta(tmp_path / "a"), _delta(tmp_path / "c"))


def test_cancel_at_update_5_leaves_no_outputs(tiny_model: Path, tmp_path: Path) -> None:
    hooks, seen = _cancel_after(5)
    checkpoints: list[int] = []
    hooks.on_checkpoint = lambda step, folder: checkpoints.append(step)
    result = erase(_config(tiny_model, 20), tmp_path, hooks)
    assert (result.status, result.steps_completed, result.outputs) == ("cancelled", 5, [])
    assert seen == [1, 2, 3, 4, 5]
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoints"}  # nothing half-written
    assert checkpoints == [5] and [s for s, _ in checkpoint_folders(tmp_path)] == [5]
    # the checkpoint is complete: the run continues from it to the end
    resumed = erase(_config(tiny_model, 7), tmp_path, resume=True)
    assert (resumed.status, resumed.resumed_from, resumed.steps_completed) == ("succeeded", 5, 7)


def test_checkpoints_keep_the_newest_and_skip_temp_folders(
    tiny_model: Path, tmp_path: Path
) -> None:
    config = _config(tiny_model, 15, checkpoint_total_limit=2)
    erase(config, tmp_path)
    assert [s for s, _ in checkpoint_folders(tmp_path)] == [10, 15]
    # a crash while writing leaves only a hidden temp folder, never read as a checkpoint
    (tmp_path / "checkpoints" / ".tmp-crashed").mkdir()
    assert erase(config, tmp_path, resume=True).resumed_from == 15
    # a damaged checkpoint (emptied by hand) is reported, not silently skipped or half-loaded
    (tmp_path / "checkpoints" / "checkpoint-99").mkdir()
    with pytest.raises(CheckpointError, match="checkpoint-99"):
        erase(config, tmp_path, resume=True)


def test_resume_refuses_another_runs_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    hooks, _ = _cancel_after(5)
    erase(_config(tiny_model, 10), tmp_path, hooks)
    with pytest.raises(CheckpointError, match="concepts"):
        erase(_config(tiny_model, 10, concepts=["a dog"]), tmp_path, resume=True)


def test_resume_without_checkpoint_starts_fresh(tiny_model: Path, tmp_path: Path) -> None:
    resumed: list[int] = []
    result = erase(_config(tiny_model, 2), tmp_path, Hooks(on_resume=resumed.append), resume=True)
    assert (result.status, result.resumed_from, resumed) == ("succeeded", None, [])
