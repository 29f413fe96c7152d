"""The operator's limits and the model registry, checked before anything is written.

The schema (`JobCreate`) cannot know these: they come from Settings and the registry. Every
violation is reported at once, each located at its field like a schema error.
"""

from core.jobs.concept_text import model_text
from core.jobs.errors import FieldError
from core.jobs.schemas import JobCreate
from core.registry import UnknownModelError, resolve_model
from core.settings import Settings


def job_request_errors(settings: Settings, request: JobCreate) -> list[FieldError]:
    errors: list[FieldError] = []

    def error(loc: tuple[str | int, ...], msg: str, kind: str = "limit_exceeded") -> None:
        errors.append(FieldError(loc=("body", *loc), msg=msg, type=kind))

    text = None
    try:
        text = model_text(resolve_model(settings, request.model))
    except UnknownModelError:
        error(("model",), f"unknown model {request.model!r}; see GET /v1/models", "unknown_model")

    if len(request.concepts) > settings.max_concepts:
        error(("concepts",), f"at most {settings.max_concepts} concepts per job")
    for index, concept in enumerate(request.concepts):
        if len(concept) > settings.max_concept_chars:
            error(("concepts", index), f"at most {settings.max_concept_chars} characters")
        elif text is not None and (problem := text.check(concept)) is not None:
            error(("concepts", index), problem.message, problem.kind)

    if request.hyperparameters.iterations > settings.max_iterations:
        error(
            ("hyperparameters", "iterations"),
            f"at most {settings.max_iterations} iterations on this deployment",
        )

    if len(request.sample_prompts) > settings.max_sample_prompts:
        error(("sample_prompts",), f"at most {settings.max_sample_prompts} sample prompts")
    for index, prompt in enumerate(request.sample_prompts):
        if len(prompt) > settings.max_prompt_chars:
            error(("sample_prompts", index), f"at most {settings.max_prompt_chars} characters")

    if len(request.metadata) > settings.max_metadata_entries:
        error(("metadata",), f"at most {settings.max_metadata_entries} entries")
    for key, value in request.metadata.items():
        if len(key) > settings.max_metadata_chars or len(value) > settings.max_metadata_chars:
            error(("metadata", key), f"keys and values at most {settings.max_metadata_chars} chars")
    return errors
