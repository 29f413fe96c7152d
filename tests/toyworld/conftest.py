"""Fixtures on the committed toy-world assets (never retrained by tests)."""

import pytest
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

from core.toyworld.evaluate import with_ddim
from core.toyworld.judge import Judge
from core.toyworld.paths import DEMO_MODEL_DIR, TOYWORLD_DIR


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # The CPU is shared; one thread keeps these tests from starving other processes.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demo_pipeline() -> StableDiffusionPipeline:
    return with_ddim(StableDiffusionPipeline.from_pretrained(DEMO_MODEL_DIR))


@pytest.fixture(scope="session")
def judge() -> Judge:
    return Judge.load(TOYWORLD_DIR)
