"""Sampling x_t with the current model (algorithm.md §4) and the x̂0 formula.

The DDIM grid has S indices; index k sits at timestep τ_k = k·T/S (T = 1000 training steps), so
x_T starts at τ_{S-1} and reaching index k takes S−1−k deterministic (eta 0) DDIM steps.
Deliberate difference: the authors' CompVis sampler stops two DDIM steps short of the timestep it
then queries, so its x_t is noisier than its t says. We stop exactly at the noise level of index
k, so z, t and ᾱ(τ_k) agree.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

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
) -> torch.Tensor:
    """DDIM-denoise x_T (eta 0, CFG) from index S−1 down to index k exactly; no gradient.

    `cond` may hold several prompts (one trajectory each, all from the same x_T) so the erasure
    and preservation trajectories share one batched forward per step."""
    z = x_T.expand(len(cond), *x_T.shape[1:])
    for index in range(grid.steps - 1, k, -1):
        t, t_prev = grid.timestep(index), grid.timestep(index - 1)
        timestep = torch.full((2 * len(cond),), t, device=z.device)
        eps = guided_eps(predict, z, timestep, cond, uncond, guidance)
        x0 = predicted_x0(eps, z, grid.alpha_bar(t))
        alpha_prev = grid.alpha_bar(t_prev)
        z = alpha_prev**0.5 * x0 + (1.0 - alpha_prev) ** 0.5 * eps
    return z
