"""The erasure method's parameters, shared by the engine, the CLI and the HTTP API.

Torch-free on purpose: the API validates job bodies against the same definitions, defaults and
ranges that the engine runs with, without importing the engine. Defaults are the reference
implementation's (algorithm.md §4). The ranges are what the method tolerates; the service adds its
own operator limits (see `core.settings.Settings`) on top.
"""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Method(StrEnum):
    AP = "ap"  # Adversarial Preservation (Bui et al. 2024)
    ESD = "esd"  # the same loop without preservation term or adversary (Gandikota et al. 2023)


class TrainMethod(StrEnum):
    """Which UNet parameters are fine-tuned (algorithm.md §5)."""

    XATTN = "xattn"  # every attn2.*: objects, artistic styles
    NOXATTN = "noxattn"  # all but attn2.*, time_embedding.*, conv_norm_out.*, conv_out.*: nudity
    SELFATTN = "selfattn"  # every attn1.*
    XATTN_KV = "xattn_kv"  # attn2.to_k and attn2.to_v only
    FULL = "full"  # everything


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"  # autocast; parameters and optimizer states stay fp32
    FP16 = "fp16"


class LossSpace(StrEnum):
    X0 = "x0"  # MSE on predicted x0, as the reference does (weights high-noise steps up)
    EPS = "eps"  # MSE on predicted noise, as plain ESD does


class Hyperparameters(BaseModel):
    """Every knob of algorithm.md §3-4, each with the reference default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(1000, ge=1, le=100_000, description="UNet updates.")
    lr: float = Field(1e-5, gt=0, le=1e-1, description="Adam learning rate of the UNet.")
    negative_guidance: float = Field(
        1.0, ge=0, le=20, description="η: erasure target is f_∅ − η(f_c − f_∅)."
    )
    start_guidance: float = Field(
        3.0, ge=0, le=30, description="CFG scale used to sample x_t with the current model."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="S: DDIM steps of the x_t sampler.")
    preservation_weight: float = Field(
        1.0, ge=0, le=100, description="λ: weight of the adversarial preservation term."
    )
    adversary_lr: float = Field(1e-2, gt=0, le=10, description="Adam learning rate of π.")
    gumbel_temperature: float = Field(
        2.0, gt=0, le=100, description="τ of the hard straight-through Gumbel-softmax."
    )
    k_closest: int = Field(
        1000, ge=1, le=100_000, description="K: candidates kept nearest each erased concept."
    )
    num_centers: int = Field(
        100, ge=1, le=10_000, description="1-D k-means centres over the K distances."
    )
    adversary_steps: int = Field(
        1, ge=0, le=100, description="Adversary steps per UNet update (reference: 1)."
    )
    vocabulary_size: int = Field(
        3000, ge=1, le=100_000, description="N: words taken from the tokenizer by default."
    )
    loss_space: LossSpace = Field(LossSpace.X0, description="Space of both MSE losses.")
