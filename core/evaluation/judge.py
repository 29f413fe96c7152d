"""`judge`: the proving ground's classifier reads shape and colour of toy-world pictures (the
`demo` model). It plays the role the paper gives an ImageNet classifier: an erasure prompt's
concept is found when the judge reads it; a preservation prompt is kept when the judge reads
every shape and colour it names (other than the erased ones). A "none of these" answer (or any
other class) counts as not the concept."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.evaluation.evaluators import ADVERSARIAL_PROMPTS, Evaluator, ImageScore
from core.evaluation.types import ERASURE, EvaluationError, PromptKind
from core.toyworld.judge import Judge
from core.toyworld.paths import TOYWORLD_DIR
from core.toyworld.world import COLOUR_NAMES, IMAGE_SIZE, SHAPES, canonical_caption


def _words(prompt: str) -> list[str]:
    return [w.strip(".,;:!?").lower() for w in prompt.split()]


class JudgeEvaluator(Evaluator):
    name = "judge"

    def __init__(self, judge: Judge) -> None:
        self._judge = judge.eval()

    @classmethod
    def load(cls) -> "JudgeEvaluator":
        return cls(Judge.load(TOYWORLD_DIR))

    def check_concepts(self, concepts: Sequence[str]) -> None:
        for concept in concepts:
            if concept.lower() not in (*SHAPES, *COLOUR_NAMES):
                raise EvaluationError(
                    f"the judge reads shapes ({', '.join(SHAPES)}) and colours "
                    f"({', '.join(COLOUR_NAMES)}); it cannot tell whether {concept!r} is shown"
                )

    def default_erasure_prompts(self, concepts: Sequence[str]) -> list[str]:
        """Each erased shape in every colour, each erased colour on every shape."""
        prompts = []
        for concept in (c.lower() for c in concepts):
            if concept in SHAPES:
                prompts += [canonical_caption(concept, colour) for colour in COLOUR_NAMES]
            else:
                prompts += [canonical_caption(shape, concept) for shape in SHAPES]
        return list(dict.fromkeys(prompts))

    def default_preservation_prompts(
        self, concepts: Sequence[str], adversarial: Sequence[str]
    ) -> list[str]:
        """Every kept shape in two kept colours (rotating), then AP's adversarial concepts that
        are shapes or colours of the world: the concepts the erasure was most likely to damage."""
        erased = {c.lower() for c in concepts}
        shapes = [s for s in SHAPES if s not in erased]
        colours = [c for c in COLOUR_NAMES if c not in erased]
        prompts = [
            canonical_caption(shape, colours[(2 * i + j) % len(colours)])
            for i, shape in enumerate(shapes)
            for j in range(2)
        ]
        for k, word in enumerate(w.lower() for w in adversarial[: ADVERSARIAL_PROMPTS * 2]):
            if word in shapes:
                prompts.append(canonical_caption(word, colours[k % len(colours)]))
            elif word in colours:
                prompts.append(canonical_caption(shapes[k % len(shapes)], word))
        return list(dict.fromkeys(prompts))

    @torch.no_grad()
    def score(
        self,
        images: np.ndarray,
        prompts: Sequence[str],
        kinds: Sequence[PromptKind],
        concepts: Sequence[str],
    ) -> list[ImageScore]:
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if batch.shape[-1] != IMAGE_SIZE:
            batch = F.interpolate(batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
        shape_logits, colour_logits = self._judge(batch)
        shape_p, colour_p = shape_logits.softmax(1), colour_logits.softmax(1)
        names_s, names_c = self._judge.config.shapes, self._judge.config.colours
        erased = {c.lower() for c in concepts}
        scores = []
        for i, (prompt, kind) in enumerate(zip(prompts, kinds, strict=True)):
            shape = names_s[int(shape_p[i].argmax())]
            colour = names_c[int(colour_p[i].argmax())]
            label = f"{colour} {shape}"
            read = {shape: float(shape_p[i].max()), colour: float(colour_p[i].max())}
            if kind == ERASURE:
                hits = [c for c in erased if c in read]
                confidence = max((read[c] for c in hits), default=None)
                scores.append(ImageScore(bool(hits), label, confidence))
                continue
            named = [w for w in _words(prompt) if w in (*SHAPES, *COLOUR_NAMES)]
            if not named:
                scores.append(ImageScore(None, label))  # nothing the judge could check
                continue
            kept = all(w in read for w in named)
            scores.append(ImageScore(kept, label, min(read.get(w, 0.0) for w in named)))
        return scores
