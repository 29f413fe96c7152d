"""Two measurements behind docs/quality.md's reading of why some shapes erase harder than others.

    python bench/toyworld_diagnostics.py

1. Text encoder: cosine between a concept word's hidden state when prompted alone (what the
   engine erases) and the same word's state inside "a ‹colour› ‹shape›" (what users prompt),
   averaged over the other axis. A low cosine means erasing the bare word may not transfer.
2. Judge: what it reads on real pictures of each shape blurred more and more. The judge has no
   "no shape" class, so a damaged picture must be read as some shape; the shapes it falls back
   on are judged as still present when an erasure leaves a blob.
"""

import sys
from collections import Counter

import click
import numpy as np
import torch
from PIL import Image, ImageFilter
from transformers import CLIPTextModel, CLIPTokenizer

from core.toyworld.judge import Judge
from core.toyworld.paths import DEMO_MODEL_DIR, TOYWORLD_DIR
from core.toyworld.training import images_to_tensor
from core.toyworld.world import COLOUR_NAMES, SHAPES, canonical_caption, make_dataset

BLUR_RADII = (0.0, 1.5, 2.0, 3.0)
PICTURES = 360  # 60 per shape
SEED = 123  # a world seed the build never used


def _token_states(tokenizer: CLIPTokenizer, encoder: CLIPTextModel, prompt: str) -> torch.Tensor:
    ids = tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        states: torch.Tensor = encoder(ids).last_hidden_state[0]
    return states


def bare_word_cosines() -> dict[str, float]:
    tokenizer = CLIPTokenizer.from_pretrained(DEMO_MODEL_DIR, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(DEMO_MODEL_DIR, subfolder="text_encoder").eval()
    result = {}
    for concept in (*SHAPES, *COLOUR_NAMES):
        bare = _token_states(tokenizer, encoder, concept)[1]  # after the start token
        pairs = (
            [(concept, colour) for colour in COLOUR_NAMES]
            if concept in SHAPES
            else [(shape, concept) for shape in SHAPES]
        )
        cosines = []
        for shape, colour in pairs:
            caption = canonical_caption(shape, colour)
            position = 1 + caption.split().index(concept)
            in_caption = _token_states(tokenizer, encoder, caption)[position]
            cosines.append(float(torch.cosine_similarity(bare, in_caption, dim=0)))
        result[concept] = float(np.mean(cosines))
    return result


def blurred_readings() -> dict[float, dict[str, Counter[str]]]:
    judge = Judge.load(TOYWORLD_DIR)
    data = make_dataset(PICTURES, seed=SEED)
    readings = {}
    for radius in BLUR_RADII:
        images = np.stack(
            [
                np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius)))
                for i in data.images
            ]
        )
        shapes, _ = judge.predict(images_to_tensor(images))
        readings[radius] = {
            shape: Counter(SHAPES[int(p)] for p in shapes[torch.from_numpy(data.shapes == index)])
            for index, shape in enumerate(SHAPES)
        }
    return readings


@click.command()
def main() -> None:
    torch.set_num_threads(1)
    click.echo("| word | cosine, bare word vs in 'a ‹colour› ‹shape›' |\n|---|---|")
    for word, cosine in bare_word_cosines().items():
        click.echo(f"| {word} | {cosine:.2f} |")
    readings = blurred_readings()
    click.echo("\n| real pictures of | " + " | ".join(f"blur {r}" for r in BLUR_RADII) + " |")
    click.echo("|---|" + "---|" * len(BLUR_RADII))
    for shape in SHAPES:
        cells = []
        for radius in BLUR_RADII:
            counts = readings[radius][shape]
            total = sum(counts.values())
            top = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in counts.most_common(2))
            cells.append(top)
        click.echo(f"| {shape} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
