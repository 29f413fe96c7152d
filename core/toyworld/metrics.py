"""ESR and PSR as the paper defines them (algorithm.md §7), on the toy world's judged pictures.

- ESR (erasure success rate): of the pictures generated from prompts naming an erased concept, the
  share in which the judge no longer reads that concept.
- PSR (preservation success rate): of the pictures generated for a kept concept (prompts that name
  no erased concept), the share the judge still reads correctly; averaged over kept concepts.

A concept is a shape or a colour, so it is judged on its own axis: erasing "circle" asks whether
circle prompts still give circles (whatever their colour), and PSR is measured on the other
shapes. `psr_other_axis` reports the axis not erased (colours, when a shape is erased), which shows
collateral damage the main PSR cannot see.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.toyworld.evaluate import Judged
from core.toyworld.world import COLOUR_NAMES, SHAPES

SHAPE_AXIS = "shape"
COLOUR_AXIS = "colour"


def concept_axis(concept: str) -> str:
    """'shape' or 'colour'; refuses anything the world does not contain."""
    name = concept.strip().lower()
    if name in SHAPES:
        return SHAPE_AXIS
    if name in COLOUR_NAMES:
        return COLOUR_AXIS
    raise ValueError(
        f"{concept!r} is not a concept of the toy world; choose a shape "
        f"({', '.join(SHAPES)}) or a colour ({', '.join(COLOUR_NAMES)})"
    )


def parse_concepts(text: str) -> list[str]:
    """'circle, red' → ['circle', 'red'], each checked against the world."""
    concepts = list(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
    if not concepts:
        raise ValueError("no concept given")
    for concept in concepts:
        concept_axis(concept)
    return concepts


@dataclass(frozen=True)
class Scores:
    """Success rates in percent, per concept and aggregated."""

    esr: float
    psr: float
    psr_other_axis: float | None
    esr_per_concept: dict[str, float] = field(default_factory=dict)
    accuracy_per_concept: dict[str, float] = field(default_factory=dict)  # kept concepts

    def as_dict(self) -> dict[str, object]:
        return {
            "esr": self.esr,
            "psr": self.psr,
            "psr_other_axis": self.psr_other_axis,
            "esr_per_concept": self.esr_per_concept,
            "accuracy_per_concept": self.accuracy_per_concept,
        }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def score(judged: Judged, erased: Sequence[str]) -> Scores:
    erased_set = set(erased)
    shapes = np.asarray([p.shape for p in judged.prompts])
    colours = np.asarray([p.colour for p in judged.prompts])
    touches_erased = np.isin(shapes, list(erased_set)) | np.isin(colours, list(erased_set))

    esr_per_concept = {}
    for concept in erased:
        if concept_axis(concept) == SHAPE_AXIS:
            mask, read = shapes == concept, judged.predicted_shapes
        else:
            mask, read = colours == concept, judged.predicted_colours
        esr_per_concept[concept] = 100.0 * float((read[mask] != concept).mean())

    accuracy: dict[str, float] = {}
    kept = ~touches_erased
    for shape in SHAPES:
        mask = kept & (shapes == shape)
        if shape not in erased_set and mask.any():
            accuracy[shape] = 100.0 * float(judged.shape_correct()[mask].mean())
    for colour in COLOUR_NAMES:
        mask = kept & (colours == colour)
        if colour not in erased_set and mask.any():
            accuracy[colour] = 100.0 * float(judged.colour_correct()[mask].mean())

    erased_axes = {concept_axis(c) for c in erased}
    same_axis = [v for k, v in accuracy.items() if concept_axis(k) in erased_axes]
    other_axis = [v for k, v in accuracy.items() if concept_axis(k) not in erased_axes]
    return Scores(
        esr=_mean(list(esr_per_concept.values())),
        psr=_mean(same_axis),
        psr_other_axis=_mean(other_axis) if other_axis else None,
        esr_per_concept=esr_per_concept,
        accuracy_per_concept=accuracy,
    )


def psr_at_esr(curve: Sequence[tuple[float, float]], target_esr: float) -> float | None:
    """PSR where a method's (ESR, PSR) path over updates first reaches `target_esr`, linearly
    interpolated between evaluations; None if it never gets there. This compares methods at
    equal erasure rather than at equal step counts."""
    for (esr_a, psr_a), (esr_b, psr_b) in itertools.pairwise(curve):
        if esr_a >= target_esr:
            return psr_a
        if esr_b >= target_esr:
            share = (target_esr - esr_a) / (esr_b - esr_a)
            return psr_a + share * (psr_b - psr_a)
    if curve and curve[-1][0] >= target_esr:
        return curve[-1][1]
    return None
