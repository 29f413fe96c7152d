"""What a job (or `eraser evaluate --prompts FILE`) asks of the evaluation stage, and the verdict.

Torch-free, like `core.hyperparameters`: the API validates the job's `evaluation` section against
the same definitions and defaults the worker runs with, without importing the evaluators.
Rates and thresholds are percentages (0-100); the alignment score is a CLIP cosine × 100.
"""

import unicodedata
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds on what one request may make a worker generate: prompts × seeds × 2 models.
MAX_PROMPTS = 64
MAX_SEEDS = 16
MAX_PROMPT_CHARS = 300
MAX_SEED = 2**32 - 1  # numpy-compatible seeds, accepted by every generator
# What the prompt validator below refuses, said in the OpenAPI document too (control characters
# are Unicode category Cc: U+0000–001F and U+007F–009F; at least one visible character).
_NOT_CONTROL = "[^\\u0000-\\u001f\\u007f-\\u009f]"
_PROMPT_PATTERN = f"^{_NOT_CONTROL}*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{_NOT_CONTROL}*$"
PromptText = Annotated[
    str, Field(max_length=MAX_PROMPT_CHARS, json_schema_extra={"pattern": _PROMPT_PATTERN})
]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class Acceptance(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_EVALUATED = "not_evaluated"


class Thresholds(BaseModel):
    """The gate. A threshold set to null is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_erasure_rate: float | None = Field(
        80.0,
        ge=0,
        le=100,
        description="Least share (%) of erased-model images of the erasure prompts in which the "
        "evaluator no longer finds the concept.",
    )
    min_preservation_rate: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Least share (%) of erased-model images of the preservation prompts that "
        "still show what their prompt asks for.",
    )
    max_preservation_drop: float | None = Field(
        15.0,
        ge=0,
        le=100,
        description="Most the preservation rate may fall below the base model's, in points.",
    )
    max_alignment_drop: float | None = Field(
        3.0,
        ge=0,
        le=100,
        description="Most the mean prompt-image alignment (CLIP cosine × 100) of the preservation "
        "prompts may fall below the base model's; only evaluators that score alignment check it.",
    )


class EvaluationRequest(BaseModel):
    """The `evaluation` section of a job. Every field has a default; `{}` is the default plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="False skips the stage (acceptance: not_evaluated).")
    erasure_prompts: list[PromptText] = Field(
        default_factory=list,
        max_length=MAX_PROMPTS,
        description="Prompts that should no longer show the concept, added to the defaults.",
    )
    preservation_prompts: list[PromptText] = Field(
        default_factory=list,
        max_length=MAX_PROMPTS,
        description="Prompts whose content must survive, added to the defaults.",
    )
    default_prompts: bool = Field(
        True,
        description="Include the default prompts (templates around each concept; AP's "
        "adversarial concepts and generic prompts). False: only the prompts listed here.",
    )
    seeds: list[Seed] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        max_length=MAX_SEEDS,
        json_schema_extra={"uniqueItems": True},
        description="One image per prompt and seed, the same seeds for the base and the erased "
        "model.",
    )
    steps: int | None = Field(
        None, ge=1, le=200, description="Sampling steps; null: the model's sampling defaults."
    )
    guidance: float | None = Field(
        None, ge=0, le=30, description="CFG scale; null: the model's sampling defaults."
    )
    acceptance: Thresholds = Field(default_factory=Thresholds)

    @field_validator("erasure_prompts", "preservation_prompts")
    @classmethod
    def _prompts_are_text(cls, prompts: list[str]) -> list[str]:
        cleaned = [prompt.strip() for prompt in prompts]
        if any(not prompt for prompt in cleaned):
            raise ValueError("prompts must not be empty or blank")
        if any(len(prompt) > MAX_PROMPT_CHARS for prompt in cleaned):
            raise ValueError(f"prompts are at most {MAX_PROMPT_CHARS} characters")
        if any(unicodedata.category(c) in ("Cc", "Cs") for prompt in cleaned for c in prompt):
            raise ValueError("prompts must not contain control characters or lone surrogates")
        return list(dict.fromkeys(cleaned))

    @field_validator("seeds")
    @classmethod
    def _seeds_distinct_and_in_range(cls, seeds: list[int]) -> list[int]:
        if any(not 0 <= seed <= MAX_SEED for seed in seeds):
            raise ValueError(f"seeds are between 0 and {MAX_SEED}")
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds
