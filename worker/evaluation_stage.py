"""A job's stages: training, then evaluation (core.evaluation), each resumable on its own.

- Training's end is made durable before evaluation starts: `training_complete.json` in the job's
  work dir records the engine's result once its outputs are written, so a worker that dies during
  evaluation is followed by one that goes straight back to evaluating (the training step count
  never restarts, nothing is retrained).
- Evaluation keeps its partial scores and pictures in the work dir (`evaluation-state/`) after
  every image batch and continues from them.
- The verdict never fails the job: a job that trained ends `succeeded` with its weights, its
  result says `acceptance: passed | failed | not_evaluated`, and an `evaluated` event says the
  same on the event stream.
"""

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.erasure.types import ErasureError, ErasureResult
from core.evaluation.types import (
    FIGURE_FILE,
    REPORT_FILE,
    STATE_DIR,
    EvaluationError,
    EvaluationHooks,
    EvaluationJob,
    EvaluationProgress,
)
from core.evaluation_request import Acceptance, EvaluationRequest
from core.jobs import lifecycle
from core.jobs.events import EventKind
from core.jobs.lifecycle import ClaimedJob, ProgressUpdate
from core.registry import UnknownModelError, resolve_model
from core.settings import Settings
from worker.heartbeat import Heartbeat
from worker.models import engine_model_source

logger = logging.getLogger(__name__)

TRAINED_FILE = "training_complete.json"
EVALUATION_STAGE = "evaluation"


@dataclass(frozen=True)
class EvaluatedResult(ErasureResult):
    """The engine's result plus what the evaluation stage adds to the job's result."""

    stage_fields: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    settings: Settings
    sessions: sessionmaker[Session]
    job: ClaimedJob
    owner: str
    heartbeat: Heartbeat
    folder: Path  # the job's work dir, stable across attempts


def train_and_evaluate(context: StageContext, train: Callable[[], ErasureResult]) -> ErasureResult:
    """Train (unless an earlier attempt finished training), then evaluate."""
    trained = _read_trained(context.folder)
    if trained is None:
        result = train()
        if result.status != "succeeded":
            return result
        _write_trained(context.folder, result)
    else:
        logger.info("job %s: training was complete; going on with evaluation", context.job.id)
        result = trained
    return _evaluate(context, result)


def result_fields(result: ErasureResult) -> dict[str, Any]:
    """What the stages add to the job's result (nothing for a plain engine result)."""
    return dict(result.stage_fields) if isinstance(result, EvaluatedResult) else {}


# -- training's end, made durable -------------------------------------------------------------


def _write_trained(folder: Path, result: ErasureResult) -> None:
    payload = {
        "steps_completed": result.steps_completed,
        "total_steps": result.total_steps,
        "outputs": result.outputs,
        "resumed_from": result.resumed_from,
        "final_losses": result.final_losses,
        "wall_time_s": result.wall_time_s,
        "warnings": list(getattr(result, "warnings", [])),
    }
    handle, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out)
    os.replace(temp, folder / TRAINED_FILE)


def _read_trained(folder: Path) -> ErasureResult | None:
    file = folder / TRAINED_FILE
    if not file.is_file():
        return None
    raw = json.loads(file.read_text())
    if not all((folder / name).exists() for name in raw["outputs"]):
        return None  # outputs gone: train again (resuming from the engine's checkpoints)
    return ErasureResult(
        status="succeeded",
        steps_completed=raw["steps_completed"],
        total_steps=raw["total_steps"],
        out_dir=folder,
        outputs=list(raw["outputs"]),
        resumed_from=raw["resumed_from"],
        final_losses=dict(raw["final_losses"]),
        wall_time_s=float(raw["wall_time_s"]),
        warnings=list(raw.get("warnings", [])),
    )


# -- evaluation -------------------------------------------------------------------------------


def _evaluate(context: StageContext, trained: ErasureResult) -> ErasureResult:
    from core.evaluation import evaluate  # torch: imported in the job's process only

    job, settings = context.job, context.settings
    timings: dict[str, float | None] = {"training_s": round(trained.wall_time_s, 3)}
    try:
        request = EvaluationRequest(**(job.evaluation or {}))
        spec = resolve_model(settings, job.model).evaluator
    except (ValidationError, UnknownModelError) as error:
        return _not_evaluated(context, trained, timings, f"cannot evaluate: {error}")
    if not request.enabled:
        return _not_evaluated(context, trained, timings, "evaluation disabled by the job")
    if spec is None:
        message = f"model {job.model!r} has no evaluator assigned (eraser models add --evaluator)"
        return _not_evaluated(context, trained, timings, message)

    progress = _ThrottledProgress(context)
    hooks = EvaluationHooks(
        on_progress=progress,
        should_cancel=context.heartbeat.should_stop,
        on_start=lambda total: _record(context, lifecycle.record_stage, EVALUATION_STAGE, 0, total),
        on_resume=lambda done, total: _record(
            context, lifecycle.record_stage, EVALUATION_STAGE, done, total, resumed=True
        ),
    )
    evaluation_job = EvaluationJob(
        model=engine_model_source(settings, job.model),
        erased=context.folder,
        concepts=job.concepts,
        evaluator=spec,
        request=request,
        device=settings.worker_device,
        out_dir=context.folder,
        state_dir=context.folder / STATE_DIR,
        cache_dir=settings.resolved_data_dir / "cache",
        batch_size=settings.evaluation_batch_size,
    )
    started = time.perf_counter()
    try:
        outcome = evaluate(evaluation_job, hooks)
    except (EvaluationError, ErasureError) as error:  # e.g. out of memory: keep the weights
        timings["evaluation_s"] = round(time.perf_counter() - started, 3)
        return _not_evaluated(context, trained, timings, error.message)
    if outcome.status == "cancelled":
        return dataclasses.replace(trained, status="cancelled", outputs=[])

    report = outcome.report
    rates, verdict = report["rates"], report["verdict"]
    alignment = rates["alignment"]
    fields = {
        "acceptance": verdict["acceptance"],
        "erasure_rate": rates["erasure_rate"],
        "preservation_rate": rates["preservation_rate"],
        "alignment_change": None if alignment is None else alignment["change"],
        "evaluation": {
            # the headline again, so a reader of this section alone has the verdict
            "acceptance": verdict["acceptance"],
            "erasure_rate": rates["erasure_rate"],
            "preservation_rate": rates["preservation_rate"],
            "evaluator": report["evaluator"],
            "base_erasure_rate": rates["base_erasure_rate"],
            "base_preservation_rate": rates["base_preservation_rate"],
            "preservation_drop": rates["preservation_drop"],
            "alignment": alignment,
            "images": report["images"],
            "checks": verdict["checks"],
            "reason": verdict["reason"],
            "report": REPORT_FILE,
            "figure": FIGURE_FILE,
        },
        "timings": {**timings, "evaluation_s": outcome.elapsed_s},
    }
    _record_verdict(context, fields)
    return EvaluatedResult(
        **{f.name: getattr(trained, f.name) for f in dataclasses.fields(ErasureResult)}
        | {"outputs": [*trained.outputs, *outcome.outputs]},
        stage_fields=fields,
    )


def _not_evaluated(
    context: StageContext, trained: ErasureResult, timings: dict[str, float | None], reason: str
) -> ErasureResult:
    logger.info("job %s: not evaluated: %s", context.job.id, reason)
    fields = {
        "acceptance": Acceptance.NOT_EVALUATED.value,
        "erasure_rate": None,
        "preservation_rate": None,
        "alignment_change": None,
        "evaluation": {"acceptance": Acceptance.NOT_EVALUATED.value, "reason": reason},
        "timings": {"evaluation_s": None, **timings},
    }
    _record_verdict(context, fields)
    return EvaluatedResult(
        **{f.name: getattr(trained, f.name) for f in dataclasses.fields(ErasureResult)},
        stage_fields=fields,
    )


def _record_verdict(context: StageContext, fields: dict[str, Any]) -> None:
    evaluation = fields["evaluation"]
    data = {
        "acceptance": fields["acceptance"],
        "erasure_rate": fields["erasure_rate"],
        "preservation_rate": fields["preservation_rate"],
        "alignment_change": fields["alignment_change"],
        "reason": evaluation.get("reason"),
    }
    if fields["acceptance"] == Acceptance.FAILED.value:
        data["failed_checks"] = [c["name"] for c in evaluation["checks"] if c["passed"] is False]
    _record(context, lifecycle.record_event, EventKind.EVALUATED, data)


def _record(context: StageContext, use_case: Any, *args: Any, **kwargs: Any) -> None:
    """Best effort, like the training's bookkeeping: a database blip must not lose the work; the
    lease heartbeat decides whether the job goes on."""
    try:
        with session_scope(context.sessions) as session:
            use_case(session, context.job.id, context.owner, *args, **kwargs)
    except SQLAlchemyError:
        logger.exception("job %s: could not record %s", context.job.id, use_case.__name__)


class _ThrottledProgress:
    """Evaluation progress into the job's progress columns, at most every progress interval,
    and always the last batch."""

    def __init__(self, context: StageContext) -> None:
        self._context = context
        self._last = float("-inf")

    def __call__(self, progress: EvaluationProgress) -> None:
        now = time.monotonic()
        interval = self._context.settings.progress_interval_seconds
        if progress.step < progress.total and now - self._last < interval:
            return
        self._last = now
        update = ProgressUpdate(
            step=progress.step, total=progress.total, losses={}, stage=EVALUATION_STAGE
        )
        _record(self._context, lifecycle.record_progress, update)
