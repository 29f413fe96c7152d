"""Must show 3 of issue 8: where the x_t sampler leaves z.

`reference` must reproduce the authors' CompVis loop (ESD's train-esd.py and its ddim.py, which
AP's code builds on): z two DDIM steps less noisy than the t it is queried at. `exact` (default)
must leave z at the noise level of the t it is queried at. The CompVis loop is transliterated here
from its own index arithmetic, not from the engine's formula, and an oracle UNet (the true ε of a
known clean image) shows the noise level a real `sample_to_index` run ends at."""

from pathlib import Path

import numpy as np
import pytest
import torch
from erasure_helpers import fast_config, prepared

from core.erasure.sampling import DdimGrid, sample_to_index
from core.erasure.trainer import Trainer
from core.hyperparameters import Hyperparameters, XtSchedule

T = 1000


def _grid(steps: int) -> DdimGrid:
    """SD's scaled-linear schedule."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2
    return DdimGrid(torch.cumprod(1 - betas, 0), steps)


def compvis_loop(steps: int, till: int) -> list[int]:
    """The levels z takes in ESD's CompVis DDIM sampler with t_start=-1, till_T=till: the level x_T
    is treated as, then the level after every step until the loop breaks."""
    c = T // steps
    ddim_timesteps = np.asarray(list(range(0, T, c))) + 1  # make_ddim_timesteps('uniform')
    prev_level = [0, *ddim_timesteps[:-1].tolist()]  # alphas_prev = [ᾱ[0]] + ᾱ[ts[:-1]]
    timesteps = ddim_timesteps[:-1]  # timesteps[:t_start] with t_start = -1
    total = timesteps.shape[0]
    levels = [int(timesteps[total - 1])]  # index total-1 is the first a_t used
    for i, _step in enumerate(np.flip(timesteps)):
        index = total - i - 1
        levels.append(prev_level[index])
        if index + 1 == till:
            break
    return levels


@pytest.mark.parametrize("steps", [50, 10, 30, 4])
def test_reference_levels_are_the_authors_loop(steps: int) -> None:
    grid = _grid(steps)
    for k in range(steps):
        assert grid.sampler_levels(k, XtSchedule.REFERENCE) == compvis_loop(steps, k), k


def test_reference_at_50_steps_is_two_ddim_steps_less_noisy_than_t() -> None:
    grid = _grid(50)
    for k in range(50):
        levels = grid.sampler_levels(k, XtSchedule.REFERENCE)
        low, high = grid.query_window(k, XtSchedule.REFERENCE)
        assert (low, high) == (20 * k, 20 * k + 20)  # t ∈ [20k, 20k + 19]
        assert levels[0] == 961
        if k >= 2:
            assert (levels[-1], len(levels) - 1) == (20 * (k - 2) + 1, 50 - k)
            assert low - levels[-1] == 2 * 20 - 1  # two DDIM strides below the lowest t
        else:  # k − 2 < 0: the loop runs to its end, the finished sample at ᾱ(0)
            assert (levels[-1], len(levels) - 1) == (0, 49)
        exact = grid.sampler_levels(k, XtSchedule.EXACT)
        assert (exact[0], exact[-1], len(exact) - 1) == (980, 20 * k, 49 - k)
        assert grid.query_window(k, XtSchedule.EXACT) == (20 * k, 20 * k + 20)


def _oracle(grid: DdimGrid, clean: torch.Tensor):  # type: ignore[no-untyped-def]
    """A UNet that predicts the true noise of `clean`: DDIM then moves z exactly along
    √ᾱ·clean + √(1−ᾱ)·n, so z's final ᾱ can be read back."""

    def predict(z: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        alpha = grid.alpha_bar(int(t[0]))
        return (z - alpha**0.5 * clean) / (1 - alpha) ** 0.5

    return predict


@pytest.mark.parametrize("schedule", [XtSchedule.EXACT, XtSchedule.REFERENCE])
def test_sampled_z_sits_at_the_schedules_noise_level(schedule: XtSchedule) -> None:
    grid, steps = _grid(50), 50
    shape = (1, 4, 8, 8)
    clean = torch.zeros(shape, dtype=torch.float64)
    clean[..., :4] = 1.0  # signal on one half, noise on the other: ᾱ is read off directly
    noise = torch.zeros(shape, dtype=torch.float64)
    noise[..., 4:] = torch.randn(1, 4, 8, 4, generator=torch.Generator().manual_seed(0))
    cond = torch.zeros(1, 3, 2, dtype=torch.float64)
    start = grid.sampler_levels(steps - 1, schedule)[0]
    a_start = grid.alpha_bar(start)
    x_T = a_start**0.5 * clean + (1 - a_start) ** 0.5 * noise
    for k in (0, 1, 2, 10, 30, 49):
        z = sample_to_index(_oracle(grid, clean), x_T, cond, cond, 3.0, grid, k, schedule)
        alpha_z = float(z[..., :4].mean()) ** 2
        low = grid.query_window(k, schedule)[0]
        if schedule == XtSchedule.EXACT:
            assert alpha_z == pytest.approx(grid.alpha_bar(20 * k), rel=1e-9)
            assert alpha_z == pytest.approx(grid.alpha_bar(low), rel=1e-9)
        else:
            level = 20 * (k - 2) + 1 if k >= 2 else 0
            assert alpha_z == pytest.approx(grid.alpha_bar(level), rel=1e-9)
            if k > 0:  # less noisy than any t it is queried at (at k = 0, t may be 0 itself)
                assert alpha_z > grid.alpha_bar(low)


def test_the_trainer_draws_and_samples_with_its_schedule(tiny_model: Path) -> None:
    """`xt_schedule` reaches the trainer: t from the schedule's window, z from its sampler."""
    assert Hyperparameters().xt_schedule == XtSchedule.EXACT
    config = fast_config(
        tiny_model, method="esd", hyperparameters={"ddim_steps": 30, "xt_schedule": "reference"}
    )
    _, run = prepared(config)
    trainer = Trainer(run.setup, seed=0)
    grid = run.setup.grid
    for _ in range(200):
        draw = trainer.draw()
        low, high = grid.query_window(draw.k, XtSchedule.REFERENCE)
        assert low <= draw.t < high
    cond = run.setup.concept_embeddings[0]
    z = trainer._sample(draw, cond)
    expected = sample_to_index(
        trainer.live_eps, draw.x_T, cond, run.setup.empty_embedding,
        run.setup.hyperparameters.start_guidance, grid, draw.k, XtSchedule.REFERENCE,
    )  # fmt: skip
    assert torch.equal(z, expected)
