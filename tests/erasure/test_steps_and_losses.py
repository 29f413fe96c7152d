"""Must show 3 and 4: what each step updates, and the loss terms of algorithm.md §4.

The strongest check recomputes one UNet step and one adversary step independently (a second UNet
loaded from disk as θ, a DDIM loop written here, the formulas of the paper) from the same random
draws, and compares with what the trainer computed."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel
from erasure_helpers import fast_config, prepared

from core.erasure.adversary import gumbel_softmax_hard
from core.erasure.losses import adversary_loss, erasure_target, preservation_loss
from core.erasure.sampling import predicted_x0
from core.erasure.trainer import Draw, Trainer


@pytest.fixture
def trainer(tiny_model: Path) -> Trainer:
    _, run = prepared(fast_config(tiny_model, hyperparameters={"lr": 1e-3}))
    return Trainer(run.setup, seed=0)


def _snapshot(trainer: Trainer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    live = [p.detach().clone() for p in trainer.setup.subset.trainable()]
    logits = [a.logits.detach().clone() for a in trainer.setup.adversaries]
    return live, logits


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_unet_step_changes_theta_prime_not_pi(trainer: Trainer) -> None:
    live, logits = _snapshot(trainer)
    frozen = {k: v.clone() for k, v in trainer.setup.subset.frozen.items()}
    trainer.unet_step()
    live_after, logits_after = _snapshot(trainer)
    assert not _equal(live, live_after)
    assert _equal(logits, logits_after)
    assert all(torch.equal(frozen[k], v) for k, v in trainer.setup.subset.frozen.items())


def test_adversary_step_changes_pi_not_theta_prime(trainer: Trainer) -> None:
    trainer.unet_step()  # θ' ≠ θ, else g_a = f_a and π has no gradient to follow
    live, logits = _snapshot(trainer)
    adam_state = copy.deepcopy(trainer.optimizer.state_dict())
    trainer.adversary_step()
    live_after, logits_after = _snapshot(trainer)
    assert _equal(live, live_after)
    assert not _equal(logits, logits_after)
    assert all(p.grad is None for p in trainer.setup.subset.trainable())  # no stale UNet grads
    assert all(p.requires_grad for p in trainer.setup.subset.trainable())
    state_after = trainer.optimizer.state_dict()["state"]
    assert all(
        torch.equal(adam_state["state"][i]["exp_avg"], state_after[i]["exp_avg"])
        for i in adam_state["state"]
    )


def test_erasure_target_is_negative_guidance() -> None:
    f_empty, f_concept = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    assert torch.equal(erasure_target(f_empty, f_concept, 1.0), torch.tensor([-1.0, -1.0]))
    assert torch.equal(erasure_target(f_empty, f_concept, 2.0), torch.tensor([-3.0, -4.0]))
    assert torch.equal(erasure_target(f_empty, f_concept, 0.0), f_empty)  # η = 0: map to ∅


def test_x0_formula() -> None:
    z, eps, alpha = torch.tensor([2.0]), torch.tensor([1.0]), 0.64
    assert torch.allclose(predicted_x0(eps, z, alpha), torch.tensor([(2.0 - 0.6) / 0.8]))


def test_adversary_loss_is_minus_the_preservation_loss() -> None:
    g, f = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])
    assert preservation_loss(g, f) == pytest.approx(2.5)
    assert adversary_loss(g, f) == pytest.approx(-2.5)


def test_gumbel_is_hard_one_hot_forward_with_gradient_on_pi() -> None:
    logits = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    y, index = gumbel_softmax_hard(logits, 2.0, torch.Generator().manual_seed(3))
    assert sorted(y.tolist()) == [0.0, 0.0, 0.0, 1.0] and y[index] == 1.0
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gumbel_samples_follow_softmax_pi() -> None:
    logits = torch.tensor([2.0, 0.0, 0.0])
    generator = torch.Generator().manual_seed(0)
    draws = [gumbel_softmax_hard(logits, 2.0, generator)[1] for _ in range(3000)]
    expected = torch.softmax(logits, 0)[0].item()  # temperature changes the soft part only
    assert draws.count(0) / len(draws) == pytest.approx(expected, abs=0.03)


def test_x_t_comes_from_the_current_model_without_gradient(trainer: Trainer) -> None:
    setup = trainer.setup
    draw = Draw(concept=0, k=0, t=10, x_T=torch.randn(setup.latent_shape))
    cond = setup.concept_embeddings[0]
    z = trainer._sample(draw, cond)
    assert not z.requires_grad
    with torch.no_grad():
        for frozen in setup.subset.frozen.values():  # θ is not what samples
            frozen.add_(0.5)
    assert torch.equal(trainer._sample(draw, cond), z)
    with torch.no_grad():
        for p in setup.subset.trainable():  # θ' is
            p.add_(0.05)
    assert not torch.equal(trainer._sample(draw, cond), z)


# ---- independent recomputation ------------------------------------------------------------------
def _ddim_to_index(unet, x_T, cond, uncond, scale, alphas, steps, k):  # type: ignore[no-untyped-def]
    """x_T → index k with DDIM (eta 0) and CFG, one prompt, written from the paper's formulas."""
    stride, z = 1000 // steps, x_T
    for j in range(steps - 1, k, -1):
        t, t_prev = j * stride, (j - 1) * stride
        e_u = unet(z, torch.tensor([t]), encoder_hidden_states=uncond).sample
        e_c = unet(z, torch.tensor([t]), encoder_hidden_states=cond).sample
        eps = e_u + scale * (e_c - e_u)
        x0 = (z - (1 - alphas[t]).sqrt() * eps) / alphas[t].sqrt()
        z = alphas[t_prev].sqrt() * x0 + (1 - alphas[t_prev]).sqrt() * eps
    return z


@torch.no_grad()
def test_unet_and_adversary_losses_match_the_paper(tiny_model: Path, trainer: Trainer) -> None:
    setup, h = trainer.setup, trainer.setup.hyperparameters
    theta = UNet2DConditionModel.from_pretrained(tiny_model / "unet")  # θ, loaded on its own
    alphas = DDIMScheduler.from_pretrained(tiny_model / "scheduler").alphas_cumprod.double()
    with torch.enable_grad():
        trainer.unet_step()  # move θ' away from θ first, so "current model" and θ differ
    live = setup.unet
    e_empty = setup.empty_embedding

    def predict(unet, z, t, e, alpha):  # type: ignore[no-untyped-def]
        eps = unet(z, torch.tensor([t]), encoder_hidden_states=e).sample
        return (z - (1 - alpha) ** 0.5 * eps) / alpha**0.5

    # replay the next UNet step's draws from a copy of the run's generator
    replay = copy.deepcopy(trainer)
    draw = replay.draw()
    adversary = replay.setup.adversaries[draw.concept]
    _, index = gumbel_softmax_hard(adversary.logits, h.gumbel_temperature, replay.generator)
    e_c = setup.concept_embeddings[draw.concept]
    e_a = adversary.candidates.matrix[index].view(1, *e_c.shape[1:])
    alpha = float(alphas[draw.k * (1000 // h.ddim_steps)])  # ᾱ(τ_k), not ᾱ(t)
    args = (e_empty, h.start_guidance, alphas.float(), h.ddim_steps, draw.k)
    z = _ddim_to_index(live, draw.x_T, e_c, *args)
    z_a = _ddim_to_index(live, draw.x_T, e_a, *args)
    f_empty, f_c = predict(theta, z, draw.t, e_empty, alpha), predict(theta, z, draw.t, e_c, alpha)
    f_a = predict(theta, z_a, draw.t, e_a, alpha)
    g_c, g_a = predict(live, z, draw.t, e_c, alpha), predict(live, z_a, draw.t, e_a, alpha)
    erase = F.mse_loss(g_c, f_empty - h.negative_guidance * (f_c - f_empty)).item()
    preserve = F.mse_loss(g_a, f_a).item()
    assert preserve > 0

    with torch.enable_grad():
        record = trainer.unet_step()
    assert record["adversarial_concept"] == adversary.candidates.words[index]
    assert (record["k"], record["t"]) == (draw.k, draw.t)
    assert record["erase"] == pytest.approx(erase, rel=1e-3)
    assert record["preserve"] == pytest.approx(preserve, rel=1e-3)
    assert record["loss"] == pytest.approx(erase + h.preservation_weight * preserve, rel=1e-3)

    # the adversary step that follows: −MSE(g_a, f_a) on fresh draws, no erasure branch
    replay = copy.deepcopy(trainer)
    draw = replay.draw()
    adversary = replay.setup.adversaries[draw.concept]
    _, index = gumbel_softmax_hard(adversary.logits, h.gumbel_temperature, replay.generator)
    e_a = adversary.candidates.matrix[index].view(1, *e_c.shape[1:])
    alpha = float(alphas[draw.k * (1000 // h.ddim_steps)])
    z_a = _ddim_to_index(
        live, draw.x_T, e_a, e_empty, h.start_guidance, alphas.float(), h.ddim_steps, draw.k
    )
    expected = -F.mse_loss(
        predict(live, z_a, draw.t, e_a, alpha), predict(theta, z_a, draw.t, e_a, alpha)
    )
    with torch.enable_grad():
        assert trainer.adversary_step() == pytest.approx(expected.item(), rel=1e-3)


def test_loss_space_accepts_the_plain_strings_an_unvalidated_config_carries() -> None:
    """`model_copy(update=...)` skips validation, so "x0" may arrive as a str, not the enum."""
    from core.erasure.losses import in_loss_space
    from core.hyperparameters import LossSpace

    eps, z = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    for space in (LossSpace.X0, "x0"):
        assert not torch.equal(in_loss_space(eps, z, 0.5, space), eps)  # type: ignore[arg-type]
    for space in (LossSpace.EPS, "eps"):
        assert torch.equal(in_loss_space(eps, z, 0.5, space), eps)  # type: ignore[arg-type]
