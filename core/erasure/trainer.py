"""The AP training loop (algorithm.md §4); ESD is the same loop without preservation or adversary.

One *update* is one UNet step followed by `adversary_steps` adversary steps. Every step draws
fresh c, k, t, x_T and Gumbel noise from the run's own generator, so the whole run is a function
of the seed and resumes bit-for-bit from a checkpoint.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.erasure.adversary import Adversary
from core.erasure.losses import (
    adversary_loss,
    erasure_loss,
    erasure_target,
    in_loss_space,
    preservation_loss,
)
from core.erasure.models import autocast, grad_scaler
from core.erasure.parameters import TrainedSubset
from core.erasure.sampling import DdimGrid, sample_to_index
from core.erasure.types import DivergedError
from core.hyperparameters import (
    AdversaryKind,
    DamageScore,
    Hyperparameters,
    LossSpace,
    Method,
    Precision,
    default_loss_space,
)

_DAMAGE_CHUNK = 16  # candidates scored per batched forward


@dataclass
class TrainingSetup:
    """Everything the loop reads; built once per run by the runner."""

    unet: nn.Module
    subset: TrainedSubset
    grid: DdimGrid
    hyperparameters: Hyperparameters
    method: Method
    device: torch.device
    precision: Precision
    concepts: list[str]
    concept_embeddings: list[torch.Tensor]  # E(c), each [1, L, D]
    empty_embedding: torch.Tensor  # e_∅ = E(""), [1, L, D]
    adversaries: list[Adversary]  # one π_c per erased concept (AP); empty for ESD
    latent_shape: tuple[int, ...]  # [1, C, H, W] of x_T

    @property
    def loss_space(self) -> LossSpace:
        return self.hyperparameters.loss_space or default_loss_space(self.method)


@dataclass(frozen=True)
class SharedTrajectory:
    """What a shared-trajectory adversary step reuses from the UNet step before it."""

    draw: "Draw"
    y: torch.Tensor  # the Gumbel sample, still differentiable w.r.t. π
    z_a: torch.Tensor
    f_a: torch.Tensor  # frozen θ's output, in loss space
    alpha: float


@dataclass(frozen=True)
class Draw:
    """The randomness of one step: erased concept c, DDIM index k, timestep t, start noise x_T."""

    concept: int
    k: int
    t: int
    x_T: torch.Tensor


class Trainer:
    """θ' and π, their optimizers, the run's generator, and the log of completed updates."""

    def __init__(self, setup: TrainingSetup, seed: int) -> None:
        self.setup = setup
        h = setup.hyperparameters
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(setup.subset.trainable(), lr=h.lr)
        self.adversary_optimizer = (
            torch.optim.Adam([a.logits for a in setup.adversaries], lr=h.adversary_lr)
            if setup.adversaries
            else None
        )
        self.scaler = grad_scaler(setup.device, setup.precision)  # fp16 only
        self.step = 0
        self.log: list[dict[str, Any]] = []
        self.elapsed_before_s = 0.0  # training time spent before a resume
        self._shared: SharedTrajectory | None = None

    # ---- the two networks -------------------------------------------------------------------
    def live_eps(self, z: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """ε_θ'(z, t, e) with the live (fine-tuned) UNet."""
        with autocast(self.setup.device, self.setup.precision):
            return self.setup.unet(z, t, encoder_hidden_states=e).sample.float()

    @torch.no_grad()
    def frozen_eps(self, z: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """ε_θ(z, t, e) with the frozen base values of the trained subset swapped in."""
        with autocast(self.setup.device, self.setup.precision):
            return self.setup.subset.frozen_forward(z, t, encoder_hidden_states=e).sample.float()

    # ---- randomness ---------------------------------------------------------------------------
    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def draw(self) -> Draw:
        """c ~ U(erased), k ~ U{0..S−1}, t ~ U{τ_k .. τ_k + T/S − 1} (its `xt_schedule`
        window), x_T ~ N(0, I)."""
        grid = self.setup.grid
        concept = self._randint(len(self.setup.concepts))
        k = self._randint(grid.steps)
        low, high = grid.query_window(k, self.setup.hyperparameters.xt_schedule)
        t = low + self._randint(high - low)
        x_T = torch.randn(self.setup.latent_shape, generator=self.generator)
        return Draw(concept, k, t, x_T.to(self.setup.device))

    def _timesteps(self, t: int, batch: int) -> torch.Tensor:
        return torch.full((batch,), t, device=self.setup.device)

    def _sample(self, draw: Draw, cond: torch.Tensor) -> torch.Tensor:
        """z (one per prompt in `cond`) at index k, placed by `xt_schedule`, by the CURRENT θ'."""
        h = self.setup.hyperparameters
        return sample_to_index(
            self.live_eps,
            draw.x_T,
            cond,
            self.setup.empty_embedding,
            h.start_guidance,
            self.setup.grid,
            draw.k,
            h.xt_schedule,
        )

    # ---- choosing the preserved concept ---------------------------------------------------------
    def preserved(self, adversary: Adversary) -> tuple[torch.Tensor, int]:
        """y (one-hot, differentiable w.r.t. π for `gumbel`) and the index of c_a ∈ R_c."""
        h = self.setup.hyperparameters
        if h.adversary == AdversaryKind.DAMAGE:
            return adversary.most_damaged(h.damage_top, self.generator)
        return adversary.sample(h.gumbel_temperature, self.generator)

    # ---- the three kinds of step --------------------------------------------------------------
    def unet_step(self) -> dict[str, Any]:
        """Minimise MSE(g_c, f_∅ − η(f_c − f_∅)) + λ·MSE(g_a, f_a) over θ' only."""
        s, h = self.setup, self.setup.hyperparameters
        draw = self.draw()
        e_c, e_empty = s.concept_embeddings[draw.concept], s.empty_embedding
        record: dict[str, Any] = {"concept": s.concepts[draw.concept], "k": draw.k, "t": draw.t}
        cond = e_c
        y: torch.Tensor | None = None
        if s.adversaries:
            adversary = s.adversaries[draw.concept]
            y, index = self.preserved(adversary)  # a sample, not an argmax
            # detached: this step trains θ' only
            e_a = adversary.embedding(y, e_c.shape[1:]).detach()
            cond = torch.cat([e_c, e_a])
            record["adversarial_concept"] = adversary.candidates.words[index]
        z_all = self._sample(draw, cond)  # [z] or [z, z_a]
        z = z_all[:1]
        alpha = s.grid.alpha_bar(s.grid.timestep(draw.k))

        frozen_z = torch.cat([z, z_all])  # [z, z] or [z, z, z_a]
        frozen_e = torch.cat([e_empty, cond])
        f = self.frozen_eps(frozen_z, self._timesteps(draw.t, len(frozen_z)), frozen_e)
        f = in_loss_space(f, frozen_z, alpha, s.loss_space)
        g = self.live_eps(z_all, self._timesteps(draw.t, len(z_all)), cond)
        g = in_loss_space(g, z_all, alpha, s.loss_space)

        erase = erasure_loss(g[:1], erasure_target(f[:1], f[1:2], h.negative_guidance))
        loss = erase
        losses = {"erase": erase}
        if s.adversaries:
            preserve = preservation_loss(g[1:], f[2:])
            loss = erase + h.preservation_weight * preserve
            losses["preserve"] = preserve
            if y is not None and h.share_trajectory:
                self._shared = SharedTrajectory(draw, y, z_all[1:], f[2:].detach(), alpha)
        losses["loss"] = loss
        record.update(_to_floats(losses))
        self._check_finite(record)
        self.optimizer.zero_grad(set_to_none=True)
        self._backward_and_step(loss, self.optimizer)
        return record

    def adversary_step(self) -> float:
        """Minimise −MSE(g_a, f_a) over π_c only; z_a and f_a carry no gradient, so π is reached
        only through e_a entering θ'. No erasure branch is computed. With `share_trajectory` the
        step reuses the UNet step's draw, c_a, z_a and f_a (θ is frozen, so f_a is unchanged) and
        costs one forward and backward instead of a whole x_t trajectory."""
        s, h = self.setup, self.setup.hyperparameters
        assert self.adversary_optimizer is not None
        shared = self._shared if h.share_trajectory else None
        if shared is not None:
            draw, y, z_a, f_a, alpha = shared.draw, shared.y, shared.z_a, shared.f_a, shared.alpha
            adversary = s.adversaries[draw.concept]
            e_a = adversary.embedding(y, s.empty_embedding.shape[1:])
        else:
            draw = self.draw()
            adversary = s.adversaries[draw.concept]
            y, _ = adversary.sample(h.gumbel_temperature, self.generator)
            e_a = adversary.embedding(y, s.empty_embedding.shape[1:])
            z_a = self._sample(draw, e_a.detach())
            alpha = s.grid.alpha_bar(s.grid.timestep(draw.k))
            f_a = self.frozen_eps(z_a, self._timesteps(draw.t, 1), e_a.detach())
            f_a = in_loss_space(f_a, z_a, alpha, s.loss_space)
        with s.subset.without_gradients():
            g_a = self.live_eps(z_a, self._timesteps(draw.t, 1), e_a)
            g_a = in_loss_space(g_a, z_a, alpha, s.loss_space)
        loss = adversary_loss(g_a, f_a)
        self._check_finite({"adversary": float(loss.detach())})
        self.adversary_optimizer.zero_grad(set_to_none=True)
        self._backward_and_step(loss, self.adversary_optimizer)
        s.subset.zero_grad()
        return float(loss.detach())

    @torch.no_grad()
    def score_damage(self) -> None:
        """The `damage` adversary's measurement: each candidate w ∈ R_c scored by its
        preservation loss E[MSE(g_w, f_w)], estimated from `damage_draws` draws.

        In x̂0 space that loss is ε-MSE × (1−ᾱ)/ᾱ, so a few high-noise draws would dominate a
        plain average. We draw k with probability ∝ that weight instead and average ε-MSE, the
        same expectation with far less variance — and most draws then sit near x_T, where the
        trajectory to z is short. z is sampled by θ' with E(c), where the erasure acts; every
        candidate is scored at the same z (2|R_c| forwards per draw, in chunks)."""
        s, h = self.setup, self.setup.hyperparameters
        for concept, adversary in enumerate(s.adversaries):
            size = len(adversary.candidates.words)
            damage, weight = torch.zeros(size), torch.zeros(size)
            for _ in range(h.damage_draws):
                part, part_weight = self._damage_at(self._damage_draw(concept), adversary)
                damage += part.cpu()
                weight += part_weight.cpu()
            adversary.damage = (
                damage / weight.clamp_min(torch.finfo(weight.dtype).tiny)
            ).clamp_min(0)

    def _damage_draw(self, concept: int) -> Draw:
        """A draw with k ~ the loss space's weight of index k (uniform in ε space)."""
        grid = self.setup.grid
        weights = torch.ones(grid.steps, dtype=torch.float64)
        if self.setup.loss_space == LossSpace.X0:
            alpha = grid.alphas_cumprod[[grid.timestep(k) for k in range(grid.steps)]]
            weights = (1 - alpha) / alpha
        k = int(torch.multinomial(weights, 1, generator=self.generator))
        low, high = grid.query_window(k, self.setup.hyperparameters.xt_schedule)
        t = low + self._randint(high - low)
        x_T = torch.randn(self.setup.latent_shape, generator=self.generator)
        return Draw(concept, k, t, x_T.to(self.setup.device))

    def _damage_at(self, draw: Draw, adversary: Adversary) -> tuple[torch.Tensor, torch.Tensor]:
        """Each candidate w's damage at the draw's z, as a (part, weight) pair that a scoring sums
        over draws and divides: drift = ε_θ'(z, t, E(w)) − ε_θ(z, t, E(w)), and
        - `full`: (ε-MSE of the drift, 1);
        - `orthogonal`: the same for the drift's part orthogonal to d_c = f_c − f_∅;
        - `lost_guidance`: (−⟨drift, d_w⟩, ‖d_w‖²) with d_w = f_w − f_∅, so the scoring is the
          share of w's own guidance that θ' has cancelled, a ratio of sums over draws because
          d_w is small at some t and a per-draw ratio would be dominated by those draws."""
        s = self.setup
        score = s.hyperparameters.damage_score
        e_c = s.concept_embeddings[draw.concept]
        z = self._sample(draw, e_c)
        f_empty, direction = None, None
        if score != DamageScore.FULL:
            both = torch.cat([s.empty_embedding, e_c])
            f = self.frozen_eps(z.expand(2, *z.shape[1:]), self._timesteps(draw.t, 2), both)
            f_empty = f[0].flatten().float()
            d = (f[1] - f[0]).flatten().float()
            direction = d / d.norm().clamp_min(torch.finfo(d.dtype).tiny)
        matrix = adversary.candidates.matrix
        parts, weights = [], []
        for start in range(0, len(matrix), _DAMAGE_CHUNK):
            rows = matrix[start : start + _DAMAGE_CHUNK].to(z.device)
            e_w = rows.view(len(rows), *s.empty_embedding.shape[1:])
            z_w = z.expand(len(rows), *z.shape[1:])
            t = self._timesteps(draw.t, len(rows))
            f_w = self.frozen_eps(z_w, t, e_w).flatten(1).float()
            drift = self.live_eps(z_w, t, e_w).flatten(1).float() - f_w
            if score == DamageScore.LOST_GUIDANCE:
                assert f_empty is not None
                guidance = f_w - f_empty
                parts.append(-(drift * guidance).mean(1))
                weights.append(guidance.pow(2).mean(1))
                continue
            if score == DamageScore.ORTHOGONAL:
                assert direction is not None
                drift = drift - (drift @ direction)[:, None] * direction
            parts.append(drift.pow(2).mean(1))
            weights.append(torch.ones(len(rows), device=drift.device))
        return torch.cat(parts), torch.cat(weights)

    def _adversary_steps(self) -> int:
        """Gradient steps on π per update: only the `gumbel` adversary learns π."""
        h = self.setup.hyperparameters
        gumbel = self.setup.adversaries and h.adversary == AdversaryKind.GUMBEL
        return h.adversary_steps if gumbel else 0

    def _damage_due(self) -> bool:
        """Score after the first update (θ' = θ before it: every drift is 0) and every
        `damage_every` updates after that."""
        h = self.setup.hyperparameters
        if not self.setup.adversaries or h.adversary != AdversaryKind.DAMAGE:
            return False
        return self.step == 1 or self.step % h.damage_every == 0

    def _backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and step; under fp16 through the gradient scaler, which skips a step whose
        scaled gradients overflowed and lowers the scale, so no inf reaches the weights."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def _check_finite(self, losses: dict[str, Any]) -> None:
        """Stop before a non-finite loss reaches the weights: every later step would be garbage."""
        for name in ("erase", "preserve", "loss", "adversary"):
            value = losses.get(name)
            if value is not None and not math.isfinite(value):
                raise DivergedError(
                    f"the {name} loss became {value} at update {self.step + 1}; lower lr, "
                    "adversary_lr or negative_guidance, or raise gumbel_temperature"
                )

    # ---- the loop ------------------------------------------------------------------------------
    def train(
        self,
        total: int,
        should_cancel: Callable[[], bool],
        after_update: Callable[[dict[str, Any]], None],
    ) -> bool:
        """Run updates until `total`; False if cancelled. `should_cancel` is polled before every
        step (UNet or adversary); `after_update` gets each completed update's log record."""
        started = time.perf_counter()
        while self.step < total:
            if should_cancel():
                return False
            record = self.unet_step()
            adversary_losses = []
            for _ in range(self._adversary_steps()):
                if should_cancel():
                    return False
                adversary_losses.append(self.adversary_step())
            if adversary_losses:
                record["adversary"] = sum(adversary_losses) / len(adversary_losses)
            self.step += 1
            if self._damage_due():
                self.score_damage()
            record["step"] = self.step
            record["elapsed_s"] = self.elapsed_before_s + time.perf_counter() - started
            self.log.append(record)
            after_update(record)
        return True

    # ---- checkpoint state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but θ' (saved separately as safetensors) needed to continue bit-for-bit."""
        return {
            "step": self.step,
            "generator": self.generator.get_state(),
            "optimizer": self.optimizer.state_dict(),
            "adversary_optimizer": (
                self.adversary_optimizer.state_dict() if self.adversary_optimizer else None
            ),
            "logits": [a.logits.detach().cpu() for a in self.setup.adversaries],
            "draws": [list(a.draws) for a in self.setup.adversaries],
            "damage": [a.damage for a in self.setup.adversaries],
            "log": self.log,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "elapsed_s": self.log[-1]["elapsed_s"] if self.log else 0.0,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.adversary_optimizer is not None:
            self.adversary_optimizer.load_state_dict(state["adversary_optimizer"])
        for adversary, logits, draws in zip(
            self.setup.adversaries, state["logits"], state["draws"], strict=True
        ):
            adversary.logits.copy_(logits)
            adversary.draws[:] = draws
        for adversary, damage in zip(
            self.setup.adversaries, state.get("damage", [None] * len(state["draws"])), strict=True
        ):
            adversary.damage = damage
        self.log = list(state["log"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.elapsed_before_s = float(state["elapsed_s"])


def _to_floats(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """One device-to-host copy for all of a step's losses instead of one sync per loss."""
    values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
    return dict(zip(losses, values, strict=True))
