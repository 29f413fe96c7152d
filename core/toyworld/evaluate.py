"""Generate pictures from a pipeline with fixed seeds and let the judge read them.

Shared by the build (base-model acceptance), the proving-ground bench and the tests, so that all
three measure the same thing the same way.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from diffusers.schedulers.scheduling_ddim import DDIMScheduler

from core.toyworld.judge import Judge
from core.toyworld.world import COLOUR_NAMES, SHAPES, canonical_caption


@dataclass(frozen=True)
class SamplingSettings:
    steps: int = 20
    guidance: float = 6.0
    images_per_caption: int = 10
    first_seed: int = 1000  # seeds first_seed .. first_seed + n - 1 for every caption
    batch_size: int = 360


@dataclass(frozen=True)
class Prompt:
    shape: str
    colour: str

    @property
    def caption(self) -> str:
        return canonical_caption(self.shape, self.colour)


def all_prompts(
    shapes: Sequence[str] = SHAPES, colours: Sequence[str] = COLOUR_NAMES
) -> list[Prompt]:
    return [Prompt(s, c) for s in shapes for c in colours]


def with_ddim(pipe: StableDiffusionPipeline) -> StableDiffusionPipeline:
    """The same pipeline sampling with DDIM (eta 0), as every measurement here does."""
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def generate(
    pipe: StableDiffusionPipeline,
    captions: Sequence[str],
    seeds: Sequence[int],
    settings: SamplingSettings,
) -> torch.Tensor:
    """One picture per (caption, seed) pair: N×3×32×32 in [-1, 1] (the judge's input range)."""
    if len(captions) != len(seeds):
        raise ValueError("one seed per caption")
    chunks = []
    for start in range(0, len(captions), settings.batch_size):
        stop = start + settings.batch_size
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[start:stop]]
        output = pipe(
            list(captions[start:stop]),
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=generators,
            output_type="pt",
        )
        chunks.append(output.images * 2 - 1)  # type: ignore[union-attr]
    return torch.cat(chunks)


@dataclass(frozen=True)
class Judged:
    """Generated pictures of a prompt set and what the judge read in each."""

    prompts: list[Prompt]  # one per image
    images: torch.Tensor
    predicted_shapes: np.ndarray  # names
    predicted_colours: np.ndarray

    def shape_correct(self) -> np.ndarray:
        return self.predicted_shapes == np.asarray([p.shape for p in self.prompts])

    def colour_correct(self) -> np.ndarray:
        return self.predicted_colours == np.asarray([p.colour for p in self.prompts])


def generate_and_judge(
    pipe: StableDiffusionPipeline,
    judge: Judge,
    prompts: Sequence[Prompt],
    settings: SamplingSettings,
) -> Judged:
    repeated = [p for p in prompts for _ in range(settings.images_per_caption)]
    seeds = [settings.first_seed + i for _ in prompts for i in range(settings.images_per_caption)]
    images = generate(pipe, [p.caption for p in repeated], seeds, settings)
    shapes, colours = judge.predict(images)
    return Judged(
        prompts=repeated,
        images=images,
        predicted_shapes=np.asarray(judge.config.shapes)[shapes.numpy()],
        predicted_colours=np.asarray(judge.config.colours)[colours.numpy()],
    )
