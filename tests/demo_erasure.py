"""Erase concepts from the committed demo model with the recommended settings, as the toy-world
CI tests do, and load the result back into a pipeline."""

from pathlib import Path

from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from safetensors.torch import load_file

from core.erasure import erase
from core.erasure.types import ErasureConfig
from core.hyperparameters import Hyperparameters, Method
from core.toyworld.evaluate import with_ddim
from core.toyworld.paths import DEMO_MODEL_DIR
from core.toyworld.recommended import Recommended


def erase_demo_model(
    concepts: list[str], hyperparameters: Hyperparameters, out: Path
) -> StableDiffusionPipeline:
    """AP on the demo model (recommended train method, seed 0, CPU); the erased pipeline."""
    result = erase(
        ErasureConfig(
            model=str(DEMO_MODEL_DIR),
            concepts=concepts,
            method=Method.AP,
            train_method=Recommended.load().train_method,
            hyperparameters=hyperparameters,
            seed=0,
            device="cpu",
            checkpoint_every=0,
        ),
        out,
    )
    assert result.status == "succeeded"
    pipe = with_ddim(StableDiffusionPipeline.from_pretrained(DEMO_MODEL_DIR))
    pipe.unet.load_state_dict(load_file(out / "delta.safetensors"), strict=False)
    return pipe
