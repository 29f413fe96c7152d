"""`clip`: zero-shot CLIP (transformers' `CLIPModel`) from a folder the operator registered.

- Erasure prompts: the concept is *found* when, among the erased concepts and a few neutral
  alternatives, CLIP matches the image best to an erased concept.
- Preservation prompts: *kept* when the prompt itself beats the erased concepts and the neutral
  alternatives; and, for every image, the alignment score: cosine(image, prompt) × 100 (the
  CLIPScore of Hessel et al. without its 2.5 rescaling).

Weak where CLIP is: it reads text in images, confuses styles with subjects, and a zero-shot
choice among few labels says "closest", not "present". Images are preprocessed here (resize,
centre crop, CLIP's normalisation), so no image processor class is needed in the folder.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTokenizer

from core.evaluation.evaluators import Evaluator, ImageScore
from core.evaluation.types import ERASURE, EvaluationError, PromptKind

NEUTRAL_LABELS = ("a photo", "an object", "a landscape", "a person", "an animal", "a pattern")
# OpenAI CLIP's normalisation, used when the folder has no preprocessor_config.json
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipEvaluator(Evaluator):
    name = "clip"
    scores_alignment = True

    def __init__(
        self,
        model: CLIPModel,
        tokenizer: CLIPTokenizer,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> None:
        self._model = model.eval().to(device)
        self._tokenizer = tokenizer
        self._device = device
        vision: Any = model.config.vision_config
        self._size = int(vision.image_size)
        self._mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> "ClipEvaluator":
        if not (folder / "config.json").is_file():
            raise EvaluationError(f"no CLIP model in {folder} (config.json missing)")
        try:
            model = CLIPModel.from_pretrained(folder)
            tokenizer = CLIPTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise EvaluationError(f"cannot load a CLIP model from {folder}: {error}") from error
        mean, std = _CLIP_MEAN, _CLIP_STD
        preprocessor = folder / "preprocessor_config.json"
        if preprocessor.is_file():
            raw = json.loads(preprocessor.read_text())
            mean, std = raw.get("image_mean", mean), raw.get("image_std", std)
        resolved = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                "cpu" if device == "auto" else device)  # fmt: skip
        return cls(model, tokenizer, mean, std, resolved)

    def _image_features(self, images: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(images).to(self._device).permute(0, 3, 1, 2).float() / 255.0
        height, width = batch.shape[-2:]
        scale = self._size / min(height, width)
        resized = (max(self._size, round(height * scale)), max(self._size, round(width * scale)))
        batch = F.interpolate(batch, size=resized, mode="bicubic", align_corners=False)
        top = (resized[0] - self._size) // 2
        left = (resized[1] - self._size) // 2
        batch = batch[..., top : top + self._size, left : left + self._size].clamp(0, 1)
        batch = (batch - self._mean) / self._std
        features = self._model.get_image_features(pixel_values=batch)
        return F.normalize(_as_tensor(features), dim=-1)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self._tokenizer(
            list(texts), padding=True, truncation=True, return_tensors="pt"
        ).to(self._device)
        features = self._model.get_text_features(**tokens)
        return F.normalize(_as_tensor(features), dim=-1)

    @torch.no_grad()
    def score(
        self,
        images: np.ndarray,
        prompts: Sequence[str],
        kinds: Sequence[PromptKind],
        concepts: Sequence[str],
    ) -> list[ImageScore]:
        image_features = self._image_features(images)
        unique_prompts = list(dict.fromkeys(prompts))
        labels = [*concepts, *NEUTRAL_LABELS]
        text = self._text_features([*labels, *unique_prompts])
        label_features, prompt_features = text[: len(labels)], text[len(labels) :]
        logit_scale = float(self._model.logit_scale.exp())
        scores = []
        for i, (prompt, kind) in enumerate(zip(prompts, kinds, strict=True)):
            image = image_features[i]
            own = prompt_features[unique_prompts.index(prompt)]
            alignment = 100.0 * float(image @ own)
            if kind == ERASURE:
                probabilities = (logit_scale * (label_features @ image)).softmax(0)
                best = int(probabilities.argmax())
                concept_p = float(probabilities[: len(concepts)].max())
                scores.append(ImageScore(best < len(concepts), labels[best], concept_p, alignment))
                continue
            candidates = torch.cat([own[None], label_features])
            probabilities = (logit_scale * (candidates @ image)).softmax(0)
            best = int(probabilities.argmax())
            label = "the prompt" if best == 0 else labels[best - 1]
            scores.append(ImageScore(best == 0, label, float(probabilities[0]), alignment))
        return scores


def _as_tensor(features: object) -> torch.Tensor:
    """transformers 5 may return a model output instead of a bare tensor."""
    if isinstance(features, torch.Tensor):
        return features
    pooled = getattr(features, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise EvaluationError(f"unexpected CLIP features of type {type(features).__name__}")
