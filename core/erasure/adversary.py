"""The adversary over candidate concepts (algorithm.md §3.5, §4): which c_a ∈ R_c to preserve.

Two ways to choose, one state per erased concept:
- `gumbel` (the paper's): π_c learnt by gradient ascent on the preservation loss, c_a a hard
  straight-through Gumbel-softmax sample of softmax(π_c), e_a = y·M_c.
- `damage` (measured): every few updates the trainer scores every candidate's preservation
  loss directly (Trainer.score_damage), and c_a is drawn from the m most damaged in proportion
  to their damage. The paper's π follows a one-sample gradient estimate of that same quantity;
  on the proving ground its ranking barely tracked the real damage (docs/quality.md), the
  measured one does, at the price of 2|R_c| extra forwards per scored draw.

All randomness comes from the run's own generator (not torch's global RNG) so that a run and its
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
    damage: torch.Tensor | None = None  # last measured drift per candidate (`damage` kind)

    @classmethod
    def uniform(cls, candidates: CandidateSet, device: torch.device) -> "Adversary":
        logits = nn.Parameter(torch.zeros(len(candidates.words), device=device))
        return cls(candidates, logits, [0] * len(candidates.words))

    def most_damaged(self, top: int | None, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """A one-hot y for a candidate among the `top` most damaged (None: all of them), drawn
        in proportion to its measured damage (uniformly before the first scoring); counts the
        draw. In proportion, because the damage is uneven: the nearest concept often drifts
        several times more than the next, and should get that much more of the preservation.
        From all by default: keeping only the top 3 concentrated the preservation on the
        erased concept's near-synonyms and stalled the erasure of red (docs/quality.md §2b)."""
        size = len(self.candidates.words)
        weights = torch.ones(size, dtype=torch.float64)
        if self.damage is not None:
            damage = self.damage.double().cpu().clamp_min(0)
            kept = torch.topk(damage, min(top or size, size)).indices
            weights = torch.zeros(size, dtype=torch.float64)
            weights[kept] = damage[kept]
            if float(weights.sum()) <= 0:  # nothing drifted yet: the top m, uniformly
                weights[kept] = 1.0
        index = int(torch.multinomial(weights, 1, generator=generator))
        self.draws[index] += 1
        return F.one_hot(torch.tensor(index), size).float().to(self.logits.device), index

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
        """softmax(π_c) for `gumbel`; for `damage`, the measured drift normalised to sum 1."""
        if self.damage is not None:
            damage = self.damage.detach().float().clamp_min(0)
            total = float(damage.sum())
            return damage / total if total > 0 else torch.full_like(damage, 1 / len(damage))
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
