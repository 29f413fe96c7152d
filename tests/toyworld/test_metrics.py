"""ESR/PSR arithmetic on hand-made judgements, and concept parsing."""

import numpy as np
import pytest
import torch

from core.toyworld.evaluate import Judged, all_prompts
from core.toyworld.metrics import (
    ALL_CONCEPTS,
    Curve,
    Tally,
    equal_erasure_with_ci,
    kept_correct,
    paired_variance,
    parse_concepts,
    pictures_for_paired_difference,
    psr_at_esr,
    score,
    tally,
)
from core.toyworld.world import NONE


def _judged(read: dict[str, str], axis: str) -> Judged:
    """Every prompt of the world once; the judge reads it correctly unless `read` remaps it."""
    prompts = all_prompts()
    shapes = np.asarray([p.shape for p in prompts])
    colours = np.asarray([p.colour for p in prompts])
    if axis == "shape":
        shapes = np.asarray([read.get(s, s) for s in shapes])
    else:
        colours = np.asarray([read.get(c, c) for c in colours])
    return Judged(prompts, torch.zeros(len(prompts), 3, 32, 32), shapes, colours)


def test_circles_turned_into_rings_are_erased_and_cost_no_kept_shape() -> None:
    # Ring prompts still give rings, so the kept shapes are all intact.
    scores = score(_judged({"circle": "ring"}, "shape"), ["circle"])
    assert scores.esr == 100.0
    assert scores.psr == 100.0
    assert scores.psr_other_axis == 100.0


def test_a_kept_shape_that_is_misread_lowers_psr_by_its_share() -> None:
    scores = score(_judged({"circle": "ring", "square": "cross"}, "shape"), ["circle"])
    assert scores.esr == 100.0
    assert scores.psr == pytest.approx(80.0)  # 4 of 5 kept shapes still right
    assert scores.accuracy_per_concept["square"] == 0.0


def test_unerased_model_has_zero_esr() -> None:
    scores = score(_judged({}, "colour"), ["red"])
    assert scores.esr == 0.0 and scores.psr == 100.0


def test_multi_concept_lists_score_each_concept_on_its_own_axis() -> None:
    scores = score(_judged({"red": "orange"}, "colour"), ["red", "circle"])
    assert scores.esr_per_concept == {"red": 100.0, "circle": 0.0}
    assert "circle" not in scores.accuracy_per_concept
    assert "red" not in scores.accuracy_per_concept


def test_parse_concepts_accepts_world_concepts_and_refuses_others() -> None:
    assert parse_concepts(" Circle, red ,circle") == ["circle", "red"]
    with pytest.raises(ValueError, match="not a concept of the toy world"):
        parse_concepts("dog")


def test_psr_at_equal_esr_interpolates_between_evaluations() -> None:
    curve = [(0.0, 100.0), (50.0, 90.0), (100.0, 70.0)]
    assert psr_at_esr(curve, 75.0) == pytest.approx(80.0)
    assert psr_at_esr(curve[:2], 75.0) is None


# ---- "none", tallies and the paired bootstrap --------------------------------------------------
def test_a_picture_read_as_none_counts_as_erased_and_as_lost() -> None:
    # Circle prompts give nothing recognisable, and so do square prompts (collateral damage).
    scores = score(_judged({"circle": NONE, "square": NONE}, "shape"), ["circle"])
    assert scores.esr == 100.0
    assert scores.accuracy_per_concept["square"] == 0.0
    assert scores.psr == pytest.approx(80.0)


def _tally_for(accuracy: dict[str, float], images: int, rng: np.random.Generator) -> Tally:
    """Pictures of every caption, each read correctly with its concept's probability."""
    prompts = [p for p in all_prompts() for _ in range(images)]
    shapes = np.asarray([p.shape for p in prompts], dtype=object)
    colours = np.asarray([p.colour for p in prompts], dtype=object)
    for names in (shapes, colours):
        wrong = rng.random(len(prompts)) > np.asarray([accuracy.get(n, 1.0) for n in names])
        names[wrong] = NONE
    judged = Judged(prompts, torch.zeros(0), shapes.astype(str), colours.astype(str))
    return tally(judged, ["red"], images)


def _curve(final_orange: float, seeds: int, images: int, rng: np.random.Generator) -> Curve:
    """Erasing red: base → half-way → fully erased; orange ends at `final_orange` accuracy."""
    points = [
        {"red": 1.0, "orange": 1.0},
        {"red": 0.5, "orange": (1.0 + final_orange) / 2},
        {"red": 0.0, "orange": final_orange},
    ]
    return Curve(
        steps=[0, 50, 100],
        tallies=[[_tally_for(p, images, rng) for p in points] for _ in range(seeds)],
    )


def test_tally_counts_hits_per_image_seed_and_concept() -> None:
    prompts = [p for p in all_prompts() for _ in range(2)]
    colours = np.asarray([p.colour for p in prompts])
    colours[[i for i, p in enumerate(prompts) if p.colour == "orange"][:3]] = NONE
    judged = Judged(prompts, torch.zeros(0), np.asarray([p.shape for p in prompts]), colours)
    counts = tally(judged, ["red"], 2)
    orange = ALL_CONCEPTS.index("orange")
    assert counts.totals[orange] == 6  # one per shape, per image seed
    assert counts.hits[:, orange].sum() == 12 - 3
    assert counts.totals[ALL_CONCEPTS.index("circle")] == 5  # red circles are not kept pictures


def test_a_method_that_spares_the_neighbour_wins_outside_the_interval() -> None:
    rng = np.random.default_rng(0)
    curves = {"esd": _curve(0.4, 3, 8, rng), "ap": _curve(0.9, 3, 8, rng)}
    compared = equal_erasure_with_ci(curves, ["red"], replicates=300)
    assert compared.esr.estimate == pytest.approx(100.0)
    gain = compared.difference["ap"]
    # Orange is 1 of 5 kept colours: 50 points on it are ~10 on PSR.
    assert 5.0 < gain.low < gain.estimate < gain.high < 16.0
    assert compared.worst_hit["esd"]["concept"] == "orange"
    assert compared.psr["esd"].low < compared.psr["esd"].estimate < compared.psr["esd"].high


def test_identical_methods_differ_by_noise_only() -> None:
    rng = np.random.default_rng(1)
    curves = {"esd": _curve(0.7, 3, 8, rng), "ap": _curve(0.7, 3, 8, rng)}
    gain = equal_erasure_with_ci(curves, ["red"], replicates=300).difference["ap"]
    assert gain.low < 0.0 < gain.high
    assert gain.high - gain.low < 12.0


def test_methods_are_compared_where_both_reach_the_same_erasure() -> None:
    rng = np.random.default_rng(2)
    weak = _curve(1.0, 3, 8, rng)
    # The weak method stops half-way: its last point (ESR ~50) sets the comparison level, and
    # the strong one is read at its half-way point, where orange is still fine.
    weak = Curve(weak.steps[:2], [run[:2] for run in weak.tallies])
    compared = equal_erasure_with_ci(
        {"weak": weak, "strong": _curve(0.0, 3, 8, rng)}, ["red"], replicates=50
    )
    assert 35.0 < compared.esr.estimate < 65.0
    assert compared.kept["strong"]["orange"] > 40.0


def test_pictures_needed_for_a_five_point_difference() -> None:
    # Unpaired bound at 80 % success for both: σ² = 2·0.8·0.2; n = (1.96·0.566/0.05)².
    assert pictures_for_paired_difference(0.32) == 492
    # Pairing helps: the fewer pictures the two methods disagree on, the fewer are needed.
    assert pictures_for_paired_difference(0.08) < 130


def test_paired_variance_counts_only_the_pictures_the_methods_disagree_on() -> None:
    lost_orange = _judged({"red": NONE, "orange": NONE}, "colour")
    kept_orange = _judged({"red": NONE}, "colour")
    a, b = kept_correct(lost_orange, ["red"]), kept_correct(kept_orange, ["red"])
    assert len(a) == 5 * 6  # kept colours × shapes
    # 6 of 30 pictures differ (orange ones), always the same way: p = 0.2, variance 0.2 − 0.04.
    assert paired_variance(b, a) == pytest.approx(0.16)
