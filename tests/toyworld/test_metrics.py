"""ESR/PSR arithmetic on hand-made judgements, and concept parsing."""

import numpy as np
import pytest
import torch

from core.toyworld.evaluate import Judged, all_prompts
from core.toyworld.metrics import parse_concepts, psr_at_esr, score


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
