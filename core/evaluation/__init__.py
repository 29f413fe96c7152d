"""The evaluation stage: does the erased model still show the concept, and what else did the
erasure cost? Generates the same prompts and seeds with the base and the erased model, scores
both with an evaluator (`judge`, `clip`, `nudenet`), and gives a verdict against thresholds.

Like `core.erasure`, it knows nothing of HTTP, Celery or SQL: the worker runs it as a job stage,
`eraser evaluate` on its own. `evaluate` is imported lazily so `core.evaluation.types` stays
torch-free.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.evaluation.runner import evaluate

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from core.evaluation.runner import evaluate

        return evaluate
    raise AttributeError(name)
