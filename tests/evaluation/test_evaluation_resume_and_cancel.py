"""The evaluation is resumable batch by batch: a cancel stops it between two batches with its
work saved, the next run continues from there, and the result equals an uninterrupted run's."""

from pathlib import Path

from core.evaluation import evaluate
from core.evaluation.types import EvaluationHooks, EvaluationJob, EvaluationProgress
from core.evaluation_request import EvaluationRequest

REQUEST = EvaluationRequest(
    default_prompts=False,
    erasure_prompts=["a red ring", "a blue ring"],
    preservation_prompts=["a green square"],
    seeds=[0, 1],
)


def _job(model: Path, erased: Path, out: Path) -> EvaluationJob:
    return EvaluationJob(
        model=str(model), erased=erased, concepts=["ring"], evaluator="judge",
        request=REQUEST, device="cpu", out_dir=out, batch_size=4,
    )  # fmt: skip


def test_a_cancelled_evaluation_resumes_where_it_stopped(
    tiny_sd: Path, erased: Path, tmp_path: Path
) -> None:
    job = _job(tiny_sd, erased, tmp_path / "resumed")
    seen: list[EvaluationProgress] = []
    stopped = evaluate(
        job, EvaluationHooks(on_progress=seen.append, should_cancel=lambda: len(seen) >= 1)
    )
    assert stopped.status == "cancelled" and stopped.steps_completed == 4
    assert stopped.total_steps == 12 and not (tmp_path / "resumed" / "evaluation.json").exists()

    resumed_at: list[tuple[int, int]] = []
    steps: list[int] = []
    finished = evaluate(
        job,
        EvaluationHooks(
            on_progress=lambda p: steps.append(p.step),
            on_resume=lambda done, total: resumed_at.append((done, total)),
        ),
    )
    assert finished.status == "succeeded" and finished.resumed_from == 4
    # the base model's last 2 images, then the erased model's 6 in batches of 4
    assert resumed_at == [(4, 12)] and steps == [6, 10, 12]
    assert finished.elapsed_s > stopped.elapsed_s  # the time of both runs

    whole = evaluate(_job(tiny_sd, erased, tmp_path / "whole"))
    assert whole.resumed_from is None
    assert finished.report["prompts"] == whole.report["prompts"]
    assert finished.report["rates"] == whole.report["rates"]
