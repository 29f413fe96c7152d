"""Helpers for the engine's tests (a uniquely named module: tests are not a package)."""

from pathlib import Path
from typing import Any

import torch

from core.erasure.losses import erasure_loss, erasure_target, in_loss_space
from core.erasure.models import BaseModel, load_base_model
from core.erasure.runner import PreparedRun, prepare
from core.erasure.trainer import Trainer
from core.erasure.types import ErasureConfig
from core.hyperparameters import Hyperparameters

# Short runs keep the suite within minutes on two shared cores; the loop is the same at any size.
FAST = {"ddim_steps": 4, "k_closest": 50, "num_centers": 8}


def fast_config(model: Path, **overrides: Any) -> ErasureConfig:
    """A config for a quick run: few DDIM steps, a small candidate set, a 1-step grid."""
    hyper = {**FAST, "iterations": 3, **overrides.pop("hyperparameters", {})}
    fields: dict[str, Any] = {
        "model": str(model),
        "concepts": ["a cat"],
        "device": "cpu",
        "grid_steps": 1,
        "checkpoint_every": 0,
        **overrides,
    }
    return ErasureConfig(hyperparameters=Hyperparameters(**hyper), **fields)


def prepared(config: ErasureConfig) -> tuple[BaseModel, PreparedRun]:
    """The loaded model and the run the engine would train, without training it."""
    base = load_base_model(config.model, torch.device("cpu"))
    return base, prepare(config, base, torch.device("cpu"))


def held_out_erasure_loss(trainer: Trainer, seed: int, draws: int) -> float:
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
            f = in_loss_space(f, torch.cat([z, z]), alpha, setup.loss_space)
            g = in_loss_space(trainer.live_eps(z, t, e_c), z, alpha, setup.loss_space)
            target = erasure_target(f[:1], f[1:], h.negative_guidance)
            losses.append(float(erasure_loss(g, target)))
    return sum(losses) / len(losses)
