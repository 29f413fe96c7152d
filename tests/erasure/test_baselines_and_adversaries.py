"""The ESD baseline is published ESD (ε space), candidates do not depend on the run seed, and the
two ways AP chooses what to preserve (the paper's Gumbel π, the measured `damage`) plus the
shared-trajectory adversary step do what their docstrings say."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from erasure_helpers import fast_config, prepared

from core.erasure.trainer import Trainer
from core.hyperparameters import LossSpace, Method


def _trainer(model: Path, **hyperparameters: object) -> Trainer:
    config = fast_config(model, hyperparameters={"lr": 1e-3, **hyperparameters})
    return Trainer(prepared(config)[1].setup, seed=0)


class _ForwardCounter:
    """Counts UNet forwards (live and frozen both run the same module)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = unet.register_forward_pre_hook(self._count)

    def _count(self, *_: object) -> None:
        self.calls += 1


def test_esd_with_no_options_is_published_esd_in_eps_space(tiny_model: Path) -> None:
    """method=esd trains MSE(ε_θ'(z,t,c), ε_θ(z,t,∅) − η(ε_θ(z,t,c) − ε_θ(z,t,∅))) on ε, not x̂0;
    recomputed here with a second UNet loaded from disk as θ, from the same draw."""
    _, run = prepared(fast_config(tiny_model, method=Method.ESD, hyperparameters={"lr": 1e-3}))
    assert run.setup.loss_space == LossSpace.EPS
    assert run.fingerprint["hyperparameters"]["loss_space"] == "eps"  # and the manifest says so
    trainer = Trainer(run.setup, seed=0)
    trainer.unet_step()  # θ' ≠ θ from here on
    theta = UNet2DConditionModel.from_pretrained(tiny_model / "unet")
    h, setup = run.setup.hyperparameters, run.setup

    replay = copy.deepcopy(trainer)
    draw = replay.draw()
    e_c, e_empty = setup.concept_embeddings[draw.concept], setup.empty_embedding
    with torch.no_grad():
        z = replay._sample(draw, e_c)
        t = torch.tensor([draw.t])
        f_empty = theta(z, t, encoder_hidden_states=e_empty).sample
        f_c = theta(z, t, encoder_hidden_states=e_c).sample
        g_c = setup.unet(z, t, encoder_hidden_states=e_c).sample
    expected = F.mse_loss(g_c, f_empty - h.negative_guidance * (f_c - f_empty)).item()
    record = trainer.unet_step()
    assert record["erase"] == pytest.approx(expected, rel=1e-4)
    assert "preserve" not in record


def test_ap_keeps_the_authors_x0_space_and_an_explicit_space_wins(tiny_model: Path) -> None:
    assert _trainer(tiny_model).setup.loss_space == LossSpace.X0
    esd_x0 = fast_config(tiny_model, method=Method.ESD, hyperparameters={"loss_space": "x0"})
    assert prepared(esd_x0)[1].setup.loss_space == LossSpace.X0


def test_candidate_set_is_the_same_for_every_run_seed(tiny_model: Path) -> None:
    words = [
        prepared(fast_config(tiny_model, seed=seed))[1].setup.adversaries[0].candidates.words
        for seed in (0, 7, 2**40)
    ]
    assert words[0] == words[1] == words[2]


def test_shared_trajectory_adversary_step_reuses_the_unet_steps_draw(tiny_model: Path) -> None:
    """One live forward instead of a whole x_t trajectory, the same c_a as the UNet step, and
    the loss −MSE(g_a, f_a) at the UNet step's z_a with the updated θ'."""
    trainer = _trainer(tiny_model, adversary="gumbel", share_trajectory=True)
    record = trainer.unet_step()
    shared = trainer._shared
    assert shared is not None
    adversary = trainer.setup.adversaries[shared.draw.concept]
    assert adversary.candidates.words[int(shared.y.argmax())] == record["adversarial_concept"]
    generator_state = trainer.generator.get_state()
    logits = adversary.logits.detach().clone()
    with torch.no_grad():
        e_a = adversary.embedding(shared.y.detach(), trainer.setup.empty_embedding.shape[1:])
        t = torch.tensor([shared.draw.t])
        g_a = trainer.setup.unet(shared.z_a, t, encoder_hidden_states=e_a).sample
        alpha = shared.alpha
        expected = -F.mse_loss(
            (shared.z_a - (1 - alpha) ** 0.5 * g_a) / alpha**0.5, shared.f_a
        ).item()
    counter = _ForwardCounter(trainer.setup.unet)
    loss = trainer.adversary_step()
    assert counter.calls == 1
    assert loss == pytest.approx(expected, rel=1e-4)
    assert not torch.equal(adversary.logits.detach(), logits)  # π moved
    assert torch.equal(trainer.generator.get_state(), generator_state)  # no fresh draw


def test_damage_draws_favour_the_noise_levels_x0_space_weighs_most(tiny_model: Path) -> None:
    trainer = _trainer(tiny_model, adversary="damage")
    ks = [trainer._damage_draw(0).k for _ in range(400)]
    steps = trainer.setup.grid.steps
    assert sum(k >= steps // 2 for k in ks) > 0.9 * len(ks)  # (1−ᾱ)/ᾱ grows with t


def test_orthogonal_damage_leaves_out_the_drift_along_the_erased_concepts_direction(
    tiny_model: Path,
) -> None:
    """damage_score=orthogonal scores only the part of each candidate's drift that the erasure
    does not have to move: orthogonal to d = ε_θ(z,t,E(c)) − ε_θ(z,t,∅) at the same z."""
    trainer = _trainer(tiny_model, adversary="damage", damage_score="orthogonal", damage_draws=1)
    trainer.train(2, lambda: False, lambda _: None)  # θ' ≠ θ
    adversary, setup = trainer.setup.adversaries[0], trainer.setup
    replay = copy.deepcopy(trainer)
    draw = replay._damage_draw(0)
    with torch.no_grad():
        z = replay._sample(draw, setup.concept_embeddings[0])
        t = torch.tensor([draw.t])
        d = (
            trainer.frozen_eps(z, t, setup.concept_embeddings[0])
            - trainer.frozen_eps(z, t, setup.empty_embedding)
        ).flatten()
        e_w = adversary.candidates.matrix[:1].view(1, *setup.empty_embedding.shape[1:])
        drift = (trainer.live_eps(z, t, e_w) - trainer.frozen_eps(z, t, e_w)).flatten()
    along = (drift @ d) / (d @ d) * d
    scores, weights = trainer._damage_at(draw, adversary)
    assert float(weights[0]) == 1.0
    assert float(scores[0]) == pytest.approx((drift - along).pow(2).mean().item(), rel=1e-3)
    assert float(scores[0]) < drift.pow(2).mean().item()  # some drift was along d, and left out


def test_lost_guidance_scores_the_share_of_a_candidates_own_guidance_that_is_cancelled(
    tiny_model: Path,
) -> None:
    """damage_score=lost_guidance: −⟨drift_w, d_w⟩ / ‖d_w‖² with d_w = ε_θ(z,t,E(w)) − ε_θ(z,t,∅)
    (a ratio of sums over the scoring's draws), so a candidate scores 1 when θ' has cancelled its
    whole guidance and nothing when its drift leaves d_w alone or strengthens it."""
    trainer = _trainer(tiny_model, adversary="damage", damage_score="lost_guidance", damage_draws=1)
    trainer.train(2, lambda: False, lambda _: None)  # θ' ≠ θ
    adversary, setup = trainer.setup.adversaries[0], trainer.setup
    replay = copy.deepcopy(trainer)
    draw = replay._damage_draw(0)
    e_w = adversary.candidates.matrix.view(-1, *setup.empty_embedding.shape[1:])
    with torch.no_grad():
        z = replay._sample(draw, setup.concept_embeddings[0]).expand(len(e_w), -1, -1, -1)
        t = torch.full((len(e_w),), draw.t)
        f_w = trainer.frozen_eps(z, t, e_w).flatten(1)
        guidance = f_w - trainer.frozen_eps(z, t, setup.empty_embedding.expand_as(e_w)).flatten(1)
        drift = trainer.live_eps(z, t, e_w).flatten(1) - f_w
    expected = (-(drift * guidance).sum(1) / guidance.pow(2).sum(1)).clamp_min(0)
    trainer.score_damage()  # the same draw: the replay's generator is where the trainer's is
    assert adversary.damage is not None
    assert torch.allclose(adversary.damage, expected, rtol=1e-3, atol=1e-7)

    # Cancel every candidate's guidance exactly: a live UNet that answers ε_θ(z, t, ∅).
    frozen = trainer.frozen_eps
    trainer.live_eps = lambda z, t, e: frozen(z, t, setup.empty_embedding.expand_as(e))  # type: ignore[method-assign]
    trainer.score_damage()
    assert adversary.damage is not None
    assert torch.allclose(adversary.damage, torch.ones(len(e_w)), rtol=1e-3)


def test_fresh_trajectory_adversary_step_samples_its_own(tiny_model: Path) -> None:
    trainer = _trainer(tiny_model)
    trainer.unet_step()
    counter = _ForwardCounter(trainer.setup.unet)
    trainer.adversary_step()
    assert counter.calls > 2  # a DDIM trajectory (unless k = S−1), then frozen and live


def test_damage_adversary_measures_drift_and_preserves_the_most_damaged(
    tiny_model: Path,
) -> None:
    trainer = _trainer(tiny_model, adversary="damage", damage_top=2, damage_every=2, damage_draws=1)
    adversary = trainer.setup.adversaries[0]
    logits = adversary.logits.detach().clone()
    assert adversary.damage is None  # θ' = θ: nothing is damaged yet, choose uniformly
    trainer.train(1, lambda: False, lambda _: None)
    assert adversary.damage is not None and len(adversary.damage) == len(logits)
    assert torch.equal(adversary.logits.detach(), logits)  # no gradient steps on π

    # a candidate's score is its ε drift between θ' and θ at a draw's z (one draw here)
    replay = copy.deepcopy(trainer)
    draw = replay._damage_draw(0)
    with torch.no_grad():
        z = replay._sample(draw, trainer.setup.concept_embeddings[0])
        e_w = adversary.candidates.matrix[:1].view(1, *trainer.setup.empty_embedding.shape[1:])
        t = torch.tensor([draw.t])
        drift = trainer.live_eps(z, t, e_w) - trainer.frozen_eps(z, t, e_w)
    trainer.score_damage()
    assert float(adversary.damage[0]) == pytest.approx(drift.pow(2).mean().item(), rel=1e-4)

    top = set(torch.topk(adversary.damage, 2).indices.tolist())
    words = adversary.candidates.words
    for _ in range(6):
        record = trainer.unet_step()
        assert words.index(record["adversarial_concept"]) in top
    assert adversary.distribution().sum().item() == pytest.approx(1.0)


def test_damage_draws_from_every_candidate_by_default_in_proportion_to_damage(
    tiny_model: Path,
) -> None:
    """The default `damage_top` (None) is every candidate: the same draws as naming |R_c|
    (docs/quality.md §2 measured it as `damage_top=8` on the 8-candidate toy model), and each
    candidate's share of the draws follows its share of the damage, the least damaged included."""
    trainer = _trainer(tiny_model)
    h = trainer.setup.hyperparameters
    assert (h.adversary, h.damage_top) == ("damage", None)
    adversary = trainer.setup.adversaries[0]
    size = len(adversary.candidates.words)
    adversary.damage = torch.linspace(1.0, float(size), size)

    def draws(top: int | None, seed: int, count: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [adversary.most_damaged(top, generator)[1] for _ in range(count)]

    assert draws(None, 5, 200) == draws(size, 5, 200)
    counts = torch.bincount(torch.tensor(draws(None, 6, 4000)), minlength=size).double()
    expected = adversary.damage.double() / adversary.damage.sum() * 4000
    assert torch.allclose(counts, expected, rtol=0.2)
