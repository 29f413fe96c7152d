"""The adversary over candidate concepts (algorithm.md §3.5, §4): π_c, hard Gumbel-softmax,
e_a = y·M_c.

Gumbel noise comes from the run's own generator (not torch's global RNG) so that a run and its
resumption draw the same samples.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.erasure.candidates import CandidateSet


@dataclass
class Adversary:
    """π_c over R_c for one erased concept, and how often each candidate was drawn."""

    candidates: CandidateSet
    logits: nn.Parameter  # π_c, uniform at start
    draws: list[int] = field(default_factory=list)

    @classmethod
    def uniform(cls, candidates: CandidateSet, device: torch.device) -> "Adversary":
        logits = nn.Parameter(torch.zeros(len(candidates.words), device=device))
        return cls(candidates, logits, [0] * len(candidates.words))

    def sample(self, temperature: float, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """y = GumbelSoftmaxHard(π_c, τ) and the index it picks; counts the draw."""
        y, index = gumbel_softmax_hard(self.logits, temperature, generator)
        self.draws[index] += 1
        return y, index

    def embedding(self, y: torch.Tensor, conditioning_shape: torch.Size) -> torch.Tensor:
        """e_a = y · M_c, reshaped to the conditioning shape [1, L, D]."""
        matrix = self.candidates.matrix.to(y.device)
        return (y @ matrix).view(1, *conditioning_shape)

    def distribution(self) -> torch.Tensor:
        return torch.softmax(self.logits.detach().float(), dim=0)


def gumbel_softmax_hard(
    logits: torch.Tensor, temperature: float, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """Straight-through Gumbel-softmax: the forward value is an exact one-hot sample of
    softmax(π); the backward pass uses the Jacobian of softmax((π + g)/τ), so π gets a gradient."""
    uniform_exponential = torch.empty(logits.shape, dtype=torch.float64)
    uniform_exponential.exponential_(generator=generator)
    gumbels = (-uniform_exponential.log()).to(device=logits.device, dtype=logits.dtype)
    soft = torch.softmax((logits + gumbels) / temperature, dim=-1)
    index = int(soft.argmax())
    hard = F.one_hot(torch.tensor(index, device=logits.device), len(logits)).to(soft.dtype)
    return hard - soft.detach() + soft, index
