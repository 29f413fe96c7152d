"""What the worker and end-to-end tests submit and expect back (a uniquely named module: tests
are not a package)."""

from typing import Any

# Few updates, a 4-step DDIM sampler and a small candidate set: every code path of a real AP run,
# in seconds on a CPU.
FAST_HYPERPARAMETERS: dict[str, Any] = {
    "iterations": 20,
    "ddim_steps": 4,
    "k_closest": 50,
    "num_centers": 5,
    "vocabulary_size": 200,
}

# The files a finished erasure publishes (the engine's outputs, the UNet folder flattened).
PUBLISHED_ARTIFACTS = frozenset(
    {
        "delta.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "manifest.json",
        "adversarial_concepts.json",
        "training_log.jsonl",
        "samples.png",
    }
)
