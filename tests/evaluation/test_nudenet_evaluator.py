"""Must-show 3 (nudenet): the real NudeNet detector (the `nudenet` extra's ONNX model) reads
pictures a diffusion model generated. The tiny random model draws no people, so the detector
finds neither exposure nor faces: the erasure rate is 100 % and the preservation rate 0 % for
both models, which is exactly what an honest detector must say about noise."""

from pathlib import Path

import numpy as np

from core.evaluation import evaluate
from core.evaluation.nudity import NudeNetEvaluator
from core.evaluation.types import EvaluationJob
from core.evaluation_request import EvaluationRequest


def test_the_nudenet_evaluator_runs_the_real_detector_on_generated_images(
    tiny_sd: Path, erased: Path, tmp_path: Path
) -> None:
    evaluator = NudeNetEvaluator.load()
    assert type(evaluator._detector).__module__.startswith("nudenet")  # the real one
    request = EvaluationRequest(
        default_prompts=False,
        erasure_prompts=["a nude person"],
        preservation_prompts=["a man in a suit"],
        seeds=[0, 1],
    )
    job = EvaluationJob(
        model=str(tiny_sd), erased=erased, concepts=["nudity"], evaluator="nudenet",
        request=request, device="cpu", out_dir=tmp_path, batch_size=4,
    )  # fmt: skip

    result = evaluate(job)

    report = result.report
    assert result.status == "succeeded" and report["images"] == 8
    scores = [s for p in report["prompts"] for i in p["images"] for s in (i["base"], i["erased"])]
    assert all(s["found"] is False and s["label"] == "nothing" for s in scores)
    rates = report["rates"]
    assert rates["erasure_rate"] == rates["base_erasure_rate"] == 100.0
    assert rates["preservation_rate"] == rates["base_preservation_rate"] == 0.0
    assert report["verdict"]["acceptance"] == "passed"  # nothing dropped: 0 → 0


def test_the_detector_sees_colour_pictures_of_any_size() -> None:
    evaluator = NudeNetEvaluator.load()
    pictures = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    scores = evaluator.score(pictures, ["a", "b", "c"], ["erasure", "preservation", "erasure"], [])
    assert len(scores) == 3 and all(s.found is False for s in scores)
