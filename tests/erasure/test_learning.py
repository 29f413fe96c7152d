"""The loop learns what it is meant to: the erasure loss on held-out draws falls with training."""

from pathlib import Path

import pytest
import torch
from erasure_helpers import fast_config, prepared

from core.erasure.losses import erasure_loss, erasure_target, in_loss_space
from core.erasure.trainer import Trainer


def _held_out_erasure_loss(trainer: Trainer, seed: int, draws: int) -> float:
    """Mean MSE(g_c, f_∅ − η(f_c − f_∅)) at fixed (x_T, t) pairs the training never sees; z = x_T
    (index S−1) so that the inputs do not move with θ'."""
    setup, h = trainer.setup, trainer.setup.hyperparameters
    generator = torch.Generator().manual_seed(seed)
    k = setup.grid.steps - 1
    alpha = setup.grid.alpha_bar(setup.grid.timestep(k))
    e_c, e_empty = setup.concept_embeddings[0], setup.empty_embedding
    losses = []
    with torch.no_grad():
        for _ in range(draws):
            z = torch.randn(setup.latent_shape, generator=generator)
            t = torch.tensor([setup.grid.timestep(k)])
            f = trainer.frozen_eps(torch.cat([z, z]), t.repeat(2), torch.cat([e_empty, e_c]))
            f = in_loss_space(f, torch.cat([z, z]), alpha, h.loss_space)
            g = in_loss_space(trainer.live_eps(z, t, e_c), z, alpha, h.loss_space)
            target = erasure_target(f[:1], f[1:], h.negative_guidance)
            losses.append(float(erasure_loss(g, target)))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("method", ["esd", "ap"])
def test_erasure_loss_falls(tiny_model: Path, method: str) -> None:
    config = fast_config(tiny_model, method=method, hyperparameters={"lr": 1e-3})
    _, run = prepared(config)
    trainer = Trainer(run.setup, seed=0)
    before = _held_out_erasure_loss(trainer, seed=123, draws=8)
    for _ in range(60):
        trainer.unet_step()
        if method == "ap":
            trainer.adversary_step()
    after = _held_out_erasure_loss(trainer, seed=123, draws=8)
    assert after < 0.5 * before
