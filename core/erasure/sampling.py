"""Sampling x_t with the current model (algorithm.md §4) and the x̂0 formula.

The DDIM grid has S indices; index k sits at timestep τ_k = k·c with c = T/S (T = 1000 training
steps). A training step draws k, a timestep t in k's window, and DDIM-samples z from x_T; *where*
that sampler leaves z is the `xt_schedule`:

- `exact` (default): x_T is treated as level τ_{S−1}; S−1−k deterministic DDIM steps end at exactly
  τ_k, and t ∈ [τ_k, τ_k + c − 1]. z, t and ᾱ(τ_k) agree.
- `reference`: the authors' CompVis loop (ESD's `train-esd.py`, which AP's code builds on). Its
  grid is j·c + 1 for j = 0 … ⌈T/c⌉ − 1, of which `t_start=-1` drops the top, so x_T is treated as
  level (⌈T/c⌉ − 2)·c + 1 (961 at S = 50). It breaks after the step whose index is k − 1, so
  for k ≥ 2 z stops at level (k − 2)·c + 1 after S − k steps (at S = 50: 50 − k steps, level
  20(k − 2) + 1), while the UNet is then queried at t ∈ [round(kT/S), round((k+1)T/S) − 1]
  = [20k, 20k + 19]. z is therefore about two DDIM steps LESS noisy than t says (the model is
  asked to denoise more noise than there is). Where k − 2 < 0 the break never fires before the
  loop's end: for k = 1 the last step (index 0) lands on ᾱ(0), and for k = 0 (`till_T = 0`
  disables the break) the loop likewise runs all its steps to ᾱ(0): both get the finished
  sample, one to two DDIM steps less noisy than t at k = 1 and under one step at k = 0.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import torch

from core.hyperparameters import XtSchedule

# ε-prediction of a UNet at (z, t, e): the live model θ' or the frozen θ
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DdimGrid:
    """S DDIM indices over T training timesteps, with the schedule's ᾱ."""

    alphas_cumprod: torch.Tensor  # ᾱ(t) for t = 0..T-1, float64 on the CPU
    steps: int  # S

    @property
    def train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def stride(self) -> int:
        """T/S: timesteps between DDIM indices, the width of the bucket t is drawn from."""
        return self.train_timesteps // self.steps

    def timestep(self, k: int) -> int:
        """τ_k."""
        return k * self.stride

    def alpha_bar(self, timestep: int) -> float:
        return float(self.alphas_cumprod[timestep])

    def query_window(self, k: int, schedule: XtSchedule) -> tuple[int, int]:
        """[low, high): the timesteps t is drawn from for index k. The same for both schedules
        when S divides T; `reference` rounds k·T/S the way the authors' script does."""
        if schedule == XtSchedule.REFERENCE:
            total, steps = self.train_timesteps, self.steps
            return round(k / steps * total), round((k + 1) / steps * total)
        return self.timestep(k), self.timestep(k) + self.stride

    def sampler_levels(self, k: int, schedule: XtSchedule) -> list[int]:
        """The timesteps z passes through on its way to index k: the first is the level x_T is
        treated as, the last the level z ends at; one DDIM step per consecutive pair."""
        if schedule == XtSchedule.REFERENCE:
            c = self.stride
            top = math.ceil(self.train_timesteps / c) - 2
            levels = [j * c + 1 for j in range(top, max(k - 2, 0) - 1, -1)]
            return levels if k >= 2 else [*levels, 0]
        return [self.timestep(index) for index in range(self.steps - 1, k - 1, -1)]


def predicted_x0(eps: torch.Tensor, z: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x̂0(ε; z, ᾱ) = (z − sqrt(1−ᾱ)·ε) / sqrt(ᾱ)."""
    return (z - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def guided_eps(
    predict: NoisePredictor,
    z: torch.Tensor,
    timestep: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """Classifier-free guidance: ε_u + s·(ε_c − ε_u), both halves in one batched forward."""
    eps = predict(torch.cat([z, z]), timestep, torch.cat([uncond.expand_as(cond), cond]))
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)


@torch.no_grad()
def sample_to_index(
    predict: NoisePredictor,
    x_T: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: float,
    grid: DdimGrid,
    k: int,
    schedule: XtSchedule = XtSchedule.EXACT,
) -> torch.Tensor:
    """DDIM-denoise x_T (eta 0, CFG) to DDIM index k; no gradient. `exact` ends at τ_k's noise
    level, `reference` where the authors' sampler ends (see the module docstring).

    `cond` may hold several prompts (one trajectory each, all from the same x_T) so the erasure
    and preservation trajectories share one batched forward per step."""
    z = x_T.expand(len(cond), *x_T.shape[1:])
    for t, t_prev in pairwise(grid.sampler_levels(k, schedule)):
        timestep = torch.full((2 * len(cond),), t, device=z.device)
        eps = guided_eps(predict, z, timestep, cond, uncond, guidance)
        x0 = predicted_x0(eps, z, grid.alpha_bar(t))
        alpha_prev = grid.alpha_bar(t_prev)
        z = alpha_prev**0.5 * x0 + (1.0 - alpha_prev) ** 0.5 * eps
    return z
