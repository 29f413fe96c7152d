"""Does an adversary find what the erasure damages? (issue 9, must-show 1)

    python bench/adversary_diagnostic.py [--concepts red,blue,green,ring,circle,square]
                                         [--erase-updates 60] [--draws 80] [--num-centers N]
                                         [--out FILE]

For each concept, on the committed toy model with the recommended settings:
1. erase it with a pure erasure loss (λ = 0) for `--erase-updates` updates, then hold θ' fixed;
2. measure each candidate's real damage: its preservation loss MSE(g_w, f_w) exactly as AP
   trains it (x̂0 space, z_w sampled by θ' from the candidate's own prompt), estimated from
   `--draws` draws of (k, t, x_T);
3. let each adversary rank the candidates on that fixed θ': `gumbel` runs the paper's π ascent
   (`--gumbel-steps` adversary steps, from uniform) and ranks by softmax(π); `damage` ranks by
   one scoring (what it acts on), repeated `--scorings` times;
4. print the Spearman rank correlation of each ranking with the real damage.
"""

import copy
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from scipy.stats import spearmanr

from core.erasure.models import load_base_model
from core.erasure.runner import prepare
from core.erasure.trainer import Trainer
from core.erasure.types import ErasureConfig
from core.hyperparameters import AdversaryKind, Method
from core.toyworld.paths import DEMO_MODEL_DIR
from core.toyworld.recommended import Recommended

DEFAULT_CONCEPTS = "red,blue,green,ring,circle,square"


def damaged_trainer(
    concept: str, recommended: Recommended, erase_updates: int, damage_draws: int | None
) -> Trainer:
    """An AP trainer whose θ' has been moved by `erase_updates` pure-erasure updates."""
    update: dict[str, Any] = {"preservation_weight": 0.0, "adversary_steps": 0}
    if damage_draws is not None:
        update["damage_draws"] = damage_draws
    h = recommended.hyperparameters.model_copy(update=update)
    config = ErasureConfig(
        model=str(DEMO_MODEL_DIR),
        concepts=[concept],
        method=Method.AP,
        train_method=recommended.train_method,
        hyperparameters=h,
        device="cpu",
    )
    base = load_base_model(config.model, torch.device("cpu"))
    trainer = Trainer(prepare(config, base, torch.device("cpu")).setup, seed=0)
    trainer.train(erase_updates, lambda: False, lambda _: None)
    return trainer


@torch.no_grad()
def real_damage(trainer: Trainer, draws: int) -> np.ndarray:
    """Per candidate: its preservation loss E[MSE(g_w, f_w)] as AP trains it — z_w sampled by θ'
    from the candidate's OWN prompt (all candidates batched from one x_T per draw). Estimated with
    k drawn ∝ the x̂0 weight and ε-MSE averaged (the same expectation as a plain x̂0 average,
    with far less variance; see Trainer.score_damage)."""
    setup = trainer.setup
    cond = setup.adversaries[0].candidates.matrix.view(-1, *setup.empty_embedding.shape[1:])
    total = torch.zeros(len(cond))
    for _ in range(draws):
        draw = trainer._damage_draw(0)
        z = trainer._sample(draw, cond)
        timesteps = torch.full((len(cond),), draw.t)
        drift = trainer.live_eps(z, timesteps, cond) - trainer.frozen_eps(z, timesteps, cond)
        total += drift.pow(2).flatten(1).mean(1)
    return (total / draws).numpy()


def gumbel_ranking(trainer: Trainer, steps: int) -> np.ndarray:
    """softmax(π) after `steps` of the paper's ascent on the fixed θ' (from uniform)."""
    probe = copy.deepcopy(trainer)
    probe.setup.hyperparameters = probe.setup.hyperparameters.model_copy(
        update={"adversary": AdversaryKind.GUMBEL}
    )
    adversary = probe.setup.adversaries[0]
    with torch.no_grad():
        adversary.logits.zero_()
    probe.adversary_optimizer = torch.optim.Adam(
        [adversary.logits], lr=probe.setup.hyperparameters.adversary_lr
    )
    for _ in range(steps):
        probe.adversary_step()
    return adversary.distribution().numpy()


def damage_rankings(trainer: Trainer, scorings: int) -> list[np.ndarray]:
    """One `damage` scoring per entry, each from a fresh draw."""
    probe = copy.deepcopy(trainer)
    rankings = []
    for _ in range(scorings):
        probe.score_damage()
        damage = probe.setup.adversaries[0].damage
        assert damage is not None
        rankings.append(damage.numpy().copy())
    return rankings


def rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def diagnose(concept: str, args: dict[str, Any], recommended: Recommended) -> dict[str, Any]:
    started = time.monotonic()
    trainer = damaged_trainer(concept, recommended, args["erase_updates"], args["damage_draws"])
    words = trainer.setup.adversaries[0].candidates.words
    damage = real_damage(trainer, args["draws"])
    gumbel = gumbel_ranking(trainer, args["gumbel_steps"])
    scorings = damage_rankings(trainer, args["scorings"])
    damage_rhos = [rho(s, damage) for s in scorings]
    order = np.argsort(-damage)
    return {
        "concept": concept,
        "candidates": words,
        "real_damage": damage.tolist(),
        "most_damaged": [words[i] for i in order[:3]],
        "gumbel": {"probabilities": gumbel.tolist(), "spearman": rho(gumbel, damage)},
        "damage": {
            "spearman_per_scoring": damage_rhos,
            "spearman_mean": float(np.mean(damage_rhos)),
            "spearman_min": float(np.min(damage_rhos)),
        },
        "wall_time_s": round(time.monotonic() - started, 1),
    }


@click.command()
@click.option("--concepts", default=DEFAULT_CONCEPTS, show_default=True)
@click.option("--erase-updates", default=60, show_default=True, help="Updates that damage θ'.")
@click.option("--draws", default=80, show_default=True, help="Draws averaged for real damage.")
@click.option("--gumbel-steps", default=60, show_default=True, help="π ascent steps.")
@click.option("--scorings", default=5, show_default=True, help="Independent damage scorings.")
@click.option(
    "--damage-draws", type=int, default=None, help="Draws per damage scoring [default: engine's]."
)
@click.option(
    "--num-centers",
    type=click.IntRange(1),
    default=None,
    help="Candidates in R_c [default: the toy settings' (17, every toy word)].",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    concepts: str,
    erase_updates: int,
    draws: int,
    gumbel_steps: int,
    scorings: int,
    damage_draws: int | None,
    num_centers: int | None,
    out: Path | None,
) -> None:
    torch.set_num_threads(1)
    recommended = Recommended.load()
    if num_centers is not None:
        chosen = recommended.hyperparameters.model_copy(update={"num_centers": num_centers})
        recommended = dataclasses.replace(recommended, hyperparameters=chosen)
    args = {
        "erase_updates": erase_updates,
        "draws": draws,
        "gumbel_steps": gumbel_steps,
        "scorings": scorings,
        "damage_draws": damage_draws,
        "num_centers": recommended.hyperparameters.num_centers,
    }
    rows = []
    print("| concept | most damaged (real) | gumbel ρ | damage ρ mean (min) |")
    print("|---|---|---|---|")
    for concept in [c.strip() for c in concepts.split(",") if c.strip()]:
        row = diagnose(concept, args, recommended)
        rows.append(row)
        print(
            f"| {concept} | {', '.join(row['most_damaged'])} | {row['gumbel']['spearman']:+.2f} "
            f"| {row['damage']['spearman_mean']:+.2f} ({row['damage']['spearman_min']:+.2f}) |",
            flush=True,
        )
    if out:
        out.write_text(json.dumps({"settings": args, "rows": rows}, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
