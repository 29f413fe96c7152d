"""The loss terms of algorithm.md §4.

Both MSEs are taken in predicted-x0 space with ᾱ(τ_k) by default, as the authors do; that equals
the ε-space MSE times (1−ᾱ)/ᾱ, so high-noise steps weigh far more. `eps` space is plain ESD's.
"""

import torch
import torch.nn.functional as F

from core.erasure.sampling import predicted_x0
from core.hyperparameters import LossSpace


def in_loss_space(
    eps: torch.Tensor, z: torch.Tensor, alpha_bar: float, space: LossSpace
) -> torch.Tensor:
    """A UNet output as the losses compare it: x̂0(ε; z, ᾱ) or ε itself."""
    return predicted_x0(eps, z, alpha_bar) if space == LossSpace.X0 else eps


def erasure_target(f_empty: torch.Tensor, f_concept: torch.Tensor, eta: float) -> torch.Tensor:
    """ESD negative guidance: f_∅ − η(f_c − f_∅), i.e. 2f_∅ − f_c at η = 1 (not 'map to ∅')."""
    return f_empty - eta * (f_concept - f_empty)


def erasure_loss(g_concept: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(g_c, f_∅ − η(f_c − f_∅)); the target comes from the frozen θ and carries no gradient."""
    return F.mse_loss(g_concept.float(), target.detach().float())


def preservation_loss(g_adversarial: torch.Tensor, f_adversarial: torch.Tensor) -> torch.Tensor:
    """MSE(g_a, f_a): θ' must predict on the adversarial concept what θ predicts."""
    return F.mse_loss(g_adversarial.float(), f_adversarial.detach().float())


def adversary_loss(g_adversarial: torch.Tensor, f_adversarial: torch.Tensor) -> torch.Tensor:
    """−MSE(g_a, f_a): minimising it moves π toward the concept θ' has drifted most on."""
    return -preservation_loss(g_adversarial, f_adversarial)
