"""The loop learns what it is meant to: the erasure loss on held-out draws falls with training."""

from pathlib import Path

import pytest
from erasure_helpers import fast_config, held_out_erasure_loss, prepared

from core.erasure.trainer import Trainer


@pytest.mark.parametrize("method", ["esd", "ap"])
def test_erasure_loss_falls(tiny_model: Path, method: str) -> None:
    config = fast_config(tiny_model, method=method, hyperparameters={"lr": 1e-3})
    _, run = prepared(config)
    trainer = Trainer(run.setup, seed=0)
    before = held_out_erasure_loss(trainer, seed=123, draws=8)
    for _ in range(60):
        trainer.unet_step()
        if method == "ap":
            trainer.adversary_step()
    after = held_out_erasure_loss(trainer, seed=123, draws=8)
    assert after < 0.5 * before
