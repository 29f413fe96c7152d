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
    AUTO = "auto"  # bf16 on a GPU that supports it, fp32 elsewhere (the engine resolves it)
    FP32 = "fp32"  # on CUDA, matmuls use TF32 unless the run turns it off
    BF16 = "bf16"  # autocast; parameters and optimizer states stay fp32
    FP16 = "fp16"  # autocast with a gradient scaler (fp16 gradients underflow without one)


class LossSpace(StrEnum):
    X0 = "x0"  # MSE on predicted x0, as the reference does (weights high-noise steps up)
    EPS = "eps"  # MSE on predicted noise, as published ESD does


class AdversaryKind(StrEnum):
    """How AP chooses the concept to preserve at each update."""

    GUMBEL = "gumbel"  # the paper's: π learnt by gradient ascent through a Gumbel-softmax sample
    DAMAGE = "damage"  # measured: score every candidate's drift, preserve the most damaged


def default_loss_space(method: Method) -> LossSpace:
    """Each method's published loss space: AP's authors use x0, published ESD uses ε."""
    return LossSpace.X0 if method == Method.AP else LossSpace.EPS


class DamageScore(StrEnum):
    """What the `damage` adversary counts as a candidate's damage."""

    FULL = "full"  # its whole ε drift between θ' and θ
    # only the drift orthogonal to the erased concept's own direction f_c − f_∅ at the same z:
    # the part the erasure does not have to move (protecting the rest fights the erasure)
    ORTHOGONAL = "orthogonal"
    # the share of its own guidance d_w = f_w − f_∅ that the drift cancels: how far w is being
    # erased alongside c (ESD erases c by moving ε along −d_c); drift that leaves d_w intact or
    # strengthens it does not count
    LOST_GUIDANCE = "lost_guidance"


class XtSchedule(StrEnum):
    """Where the x_t sampler leaves z relative to the t the UNet is then queried at."""

    EXACT = "exact"  # z at the noise level of DDIM index k, t drawn in that index's bucket
    REFERENCE = "reference"  # the authors' CompVis loop: z two DDIM steps less noisy than t


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
    vocabulary_size: int = Field(3000, ge=1, le=100_000, description="N: default vocabulary size.")
    loss_space: LossSpace | None = Field(
        None,
        description="Space of both MSE losses; None = the method's own (ap: x0, esd: eps).",
    )
    adversary: AdversaryKind = Field(
        AdversaryKind.DAMAGE,
        description="AP's choice of the preserved concept: damage (measured, the default), or "
        "the paper's gumbel.",
    )
    damage_every: int = Field(
        40, ge=1, le=10_000, description="damage: updates between scorings of every candidate."
    )
    damage_draws: int = Field(
        8, ge=1, le=100, description="damage: draws of (k, t, x_T) averaged per scoring."
    )
    damage_top: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="damage: c_a drawn ∝ damage from the m most damaged; None = every candidate.",
    )
    damage_score: DamageScore = Field(
        DamageScore.FULL,
        description="damage: full drift; only its part orthogonal to the erased concept's "
        "direction f_c − f_∅ (so the adversary does not protect what erasing must move); or "
        "lost_guidance, the share of a candidate's own guidance f_w − f_∅ that the drift cancels.",
    )
    share_trajectory: bool = Field(
        False,
        description="Adversary steps reuse the UNet step's x_t instead of sampling their own.",
    )
    xt_schedule: XtSchedule = Field(
        XtSchedule.EXACT,
        description="exact: z sits at the noise level of the t it is queried at; reference: "
        "the authors' sampler (z two DDIM steps less noisy), for reproducing their numbers.",
    )

    def for_method(self, method: Method) -> "Hyperparameters":
        """These settings with every method-dependent default made explicit (the manifest and the
        checkpoint fingerprint then name the loss space that really ran)."""
        if self.loss_space is not None:
            return self
        return self.model_copy(update={"loss_space": default_loss_space(method)})
