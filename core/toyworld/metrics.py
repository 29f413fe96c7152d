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


# ---- telling methods apart: confidence intervals, paired across methods --------------------------
# A method's score comes from a few training seeds and a few pictures per caption; both vary. The
# bootstrap below resamples both at once: training seeds (which run) and image seeds (which
# starting noise). Image seeds are shared by every prompt and every method, and seed index k of
# one method is resampled together with seed index k of the others, so a difference between
# methods is measured on the same resampled pictures (paired), which is what lets it be small.

Z_95 = 1.959964


@dataclass(frozen=True)
class Tally:
    """One judged checkpoint, reduced to what the statistics need: per image seed j and concept c,
    how many of c's prompts the judge read correctly (`hits[j, c]`) out of `totals[c]`.

    Concepts are every shape and colour of the world. For an erased concept its prompts are all
    prompts naming it and "correct" means still read as it (ESR is 1 − that share); for a kept
    concept its prompts are those naming no erased concept, as in `score`. Pictures read "none"
    are never correct.
    """

    hits: np.ndarray  # J×C int
    totals: np.ndarray  # C int

    def as_dict(self) -> dict[str, object]:
        return {"hits": self.hits.tolist(), "totals": self.totals.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> "Tally":
        return cls(np.asarray(raw["hits"], dtype=np.int64), np.asarray(raw["totals"], np.int64))


ALL_CONCEPTS: tuple[str, ...] = (*SHAPES, *COLOUR_NAMES)


def tally(judged: Judged, erased: Sequence[str], images_per_caption: int) -> Tally:
    """`judged` must hold every prompt with the same image seeds, in `generate_and_judge`'s order
    (prompt-major), so that picture i has image seed i mod `images_per_caption`."""
    erased_set = set(erased)
    shapes = np.asarray([p.shape for p in judged.prompts])
    colours = np.asarray([p.colour for p in judged.prompts])
    touches_erased = np.isin(shapes, list(erased_set)) | np.isin(colours, list(erased_set))
    seed_index = np.arange(len(judged.prompts)) % images_per_caption
    shape_ok, colour_ok = judged.shape_correct(), judged.colour_correct()
    hits = np.zeros((images_per_caption, len(ALL_CONCEPTS)), dtype=np.int64)
    totals = np.zeros(len(ALL_CONCEPTS), dtype=np.int64)
    for c, concept in enumerate(ALL_CONCEPTS):
        on_axis, ok = (shapes, shape_ok) if concept in SHAPES else (colours, colour_ok)
        mask = on_axis == concept
        if concept not in erased_set:
            mask &= ~touches_erased
        hits[:, c] = np.bincount(seed_index[mask & ok], minlength=images_per_caption)
        totals[c] = mask.sum() // images_per_caption
    return Tally(hits, totals)


@dataclass(frozen=True)
class Curve:
    """A method's judged checkpoints: `tallies[s][t]` for training seed s at `steps[t]`. Every
    seed shares the steps (step 0 is the base model)."""

    steps: list[int]
    tallies: list[list[Tally]]


def _accuracies(curve: Curve, image_weights: np.ndarray, seed_weights: np.ndarray) -> np.ndarray:
    """B×T×C accuracy (share correct) per replicate, checkpoint and concept: the per-run
    accuracy on the weighted image seeds, averaged over the weighted training seeds."""
    hits = np.asarray([[t.hits for t in run] for run in curve.tallies], dtype=np.float64)  # STJC
    totals = np.asarray([[t.totals for t in run] for run in curve.tallies], dtype=np.float64)
    weighted_hits = np.einsum("bj,stjc->bstc", image_weights, hits)
    pictures = image_weights.sum(1)[:, None, None, None] * totals[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_run = weighted_hits / pictures
    return np.einsum("bs,bstc->btc", seed_weights, per_run) / seed_weights.sum(1)[:, None, None]


def _rates(accuracy: np.ndarray, erased: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ESR, same-axis PSR) in percent from B×T×C accuracies."""
    erased_idx = [ALL_CONCEPTS.index(c) for c in erased]
    axes = {concept_axis(c) for c in erased}
    kept_idx = [
        i for i, c in enumerate(ALL_CONCEPTS) if c not in erased and concept_axis(c) in axes
    ]
    esr = 100.0 * (1.0 - accuracy[..., erased_idx].mean(-1))
    psr = 100.0 * accuracy[..., kept_idx].mean(-1)
    return esr, psr


def _crossing(esr: np.ndarray, target: float) -> tuple[int, float] | None:
    """(t, share): the ESR path first reaches `target` at t + share of the way to t + 1."""
    for t in range(len(esr)):
        if esr[t] >= target:
            if t == 0:
                return 0, 0.0
            share = (target - esr[t - 1]) / (esr[t] - esr[t - 1])
            return t - 1, float(share)
    return None


def _at(values: np.ndarray, where: tuple[int, float]) -> np.ndarray:
    t, share = where
    if share == 0.0:
        return values[t]
    return values[t] + share * (values[t + 1] - values[t])


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.1f} [{self.low:.1f}, {self.high:.1f}]"


def _interval(estimate: float, replicates: np.ndarray) -> Interval:
    finite = replicates[np.isfinite(replicates)]
    if not len(finite):
        return Interval(estimate, float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(estimate, float(low), float(high))


@dataclass(frozen=True)
class EqualErasure:
    """Methods compared where each first reaches the same ESR: the highest ESR that every
    method's mean curve reaches (recomputed in every bootstrap replicate)."""

    esr: Interval
    psr: dict[str, Interval]
    # PSR difference of each method against the reference method (paired): positive = better.
    difference: dict[str, Interval]
    final_esr: dict[str, Interval]
    # Each kept concept's accuracy (percent) at the compared point, per method; and the base's.
    kept: dict[str, dict[str, float]]
    base_kept: dict[str, float]
    worst_hit: dict[str, dict[str, object]]  # method -> concept, accuracy, drop from base (CI)
    replicates: int
    # Bootstrap replicates of each method's PSR (row 0 excluded), for combining jobs that were
    # resampled with the same weights (see `equal_erasure_with_ci`'s `seed`).
    psr_replicates: dict[str, np.ndarray] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "esr": self.esr.as_dict(),
            "psr": {m: v.as_dict() for m, v in self.psr.items()},
            "difference": {m: v.as_dict() for m, v in self.difference.items()},
            "final_esr": {m: v.as_dict() for m, v in self.final_esr.items()},
            "kept": self.kept,
            "base_kept": self.base_kept,
            "worst_hit": self.worst_hit,
            "replicates": self.replicates,
        }


def _replicate_weights(rng: np.random.Generator, replicates: int, size: int) -> np.ndarray:
    """Row 0: every item once (the point estimate); then multinomial resampling counts."""
    counts = rng.multinomial(size, np.full(size, 1.0 / size), size=replicates).astype(np.float64)
    return np.vstack([np.ones((1, size)), counts])


def equal_erasure_with_ci(
    curves: dict[str, Curve],
    erased: Sequence[str],
    reference: str | None = None,
    replicates: int = 1000,
    seed: int = 0,
) -> EqualErasure:
    """Equal-erasure PSR per method with 95 % percentile-bootstrap intervals, the paired
    difference of each method against `reference` (default: the first), and the kept concept
    each method hurts most at that point (what a user of the erased model loses)."""
    methods = list(curves)
    reference = reference or methods[0]
    seeds = {len(c.tallies) for c in curves.values()}
    images = {c.tallies[0][0].hits.shape[0] for c in curves.values()}
    if len(seeds) != 1 or len(images) != 1:
        raise ValueError("paired comparison needs the same seeds and pictures for every method")
    rng = np.random.default_rng(seed)
    seed_weights = _replicate_weights(rng, replicates, seeds.pop())
    image_weights = _replicate_weights(rng, replicates, images.pop())
    accuracy = {m: _accuracies(c, image_weights, seed_weights) for m, c in curves.items()}
    rates = {m: _rates(a, erased) for m, a in accuracy.items()}
    kept_idx = [i for i, c in enumerate(ALL_CONCEPTS) if c not in erased]
    n = replicates + 1
    target = np.min([rates[m][0].max(1) for m in methods], axis=0)  # B
    psr = {m: np.full(n, np.nan) for m in methods}
    kept_at = {m: np.full((n, len(kept_idx)), np.nan) for m in methods}
    for m in methods:
        esr_path, psr_path = rates[m]
        for b in range(n):
            where = _crossing(esr_path[b], float(target[b]))
            if where is None:
                continue
            psr[m][b] = float(_at(psr_path[b], where))
            kept_at[m][b] = 100.0 * _at(accuracy[m][b][:, kept_idx], where)
    # Base accuracy: step 0 of the reference curve, pooled over its seeds (all runs start there).
    base = 100.0 * accuracy[reference][:, 0, kept_idx]  # B×K
    worst: dict[str, dict[str, object]] = {}
    for m in methods:
        drop = base - kept_at[m]
        k = int(np.nanargmax(drop[0]))
        worst[m] = {
            "concept": ALL_CONCEPTS[kept_idx[k]],
            "accuracy": _interval(float(kept_at[m][0, k]), kept_at[m][1:, k]).as_dict(),
            "base": float(base[0, k]),
            "drop": _interval(float(drop[0, k]), drop[1:, k]).as_dict(),
        }
    final_esr = {m: _interval(float(rates[m][0][0, -1]), rates[m][0][1:, -1]) for m in methods}
    return EqualErasure(
        esr=_interval(float(target[0]), target[1:]),
        psr={m: _interval(float(v[0]), v[1:]) for m, v in psr.items()},
        difference={
            m: _interval(float(psr[m][0] - psr[reference][0]), psr[m][1:] - psr[reference][1:])
            for m in methods
            if m != reference
        },
        final_esr=final_esr,
        kept={
            m: {ALL_CONCEPTS[i]: float(kept_at[m][0, k]) for k, i in enumerate(kept_idx)}
            for m in methods
        },
        base_kept={ALL_CONCEPTS[i]: float(base[0, k]) for k, i in enumerate(kept_idx)},
        worst_hit=worst,
        replicates=replicates,
        psr_replicates={m: v[1:] for m, v in psr.items()},
    )


def pictures_for_paired_difference(per_picture_variance: float, half_width: float = 5.0) -> int:
    """Pictures (per method, over all seeds) for the 95 % interval of a paired difference of
    two success rates to be ± `half_width` points: n = (z·σ_d / h)², σ_d² being the variance of
    one picture's paired difference (in {−1, 0, 1}). Without paired data, σ_d² ≤ p₁q₁ + p₂q₂."""
    return int(np.ceil((Z_95 * np.sqrt(per_picture_variance) * 100.0 / half_width) ** 2))


def paired_variance(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Variance of the per-picture difference between two methods judged on the same pictures."""
    difference = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    return float(difference.var())


def kept_correct(judged: Judged, erased: Sequence[str]) -> np.ndarray:
    """Per picture of a kept concept on an erased axis (the pictures PSR is made of): whether
    the judge read it as prompted. Same order for every method judged on the same prompts."""
    erased_set = set(erased)
    shapes = np.asarray([p.shape for p in judged.prompts])
    colours = np.asarray([p.colour for p in judged.prompts])
    kept = ~(np.isin(shapes, list(erased_set)) | np.isin(colours, list(erased_set)))
    axes = {concept_axis(c) for c in erased}
    parts = []
    if SHAPE_AXIS in axes:
        parts.append(judged.shape_correct()[kept])
    if COLOUR_AXIS in axes:
        parts.append(judged.colour_correct()[kept])
    return np.concatenate(parts)
