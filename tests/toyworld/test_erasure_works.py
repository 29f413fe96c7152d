"""CI check that erasure works at all, on the committed toy model: a short AP run (the demo's
settings from recommended.json) must make the erased shape's prompts stop producing it while the
other shapes stay recognisable.

The shape is `ring`. Not every shape erases this well in 100 updates: docs/quality_history.md
§4b has the table for all six, and why circle and square, the shapes the judge falls back on for
a damaged picture, score lowest."""

from pathlib import Path

from demo_erasure import erase_demo_model
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

from core.toyworld.evaluate import SamplingSettings, all_prompts, generate_and_judge
from core.toyworld.judge import Judge
from core.toyworld.metrics import score
from core.toyworld.recommended import Recommended

CONCEPT = "ring"
# 8 pictures per caption: with 4, the kept shapes' PSR moved by up to 15 points between picture
# seeds for the same model (both adversaries), which put this check on its own bound.
JUDGED = SamplingSettings(images_per_caption=8, first_seed=500)


def test_short_ap_erasure_removes_a_shape_and_keeps_the_other_shapes(
    tmp_path: Path, demo_pipeline: StableDiffusionPipeline, judge: Judge
) -> None:
    recommended = Recommended.load()
    recommended = recommended.with_iterations(recommended.demo_iterations)
    erased_pipe = erase_demo_model([CONCEPT], recommended.hyperparameters, tmp_path)

    before = score(generate_and_judge(demo_pipeline, judge, all_prompts(), JUDGED), [CONCEPT])
    after = score(generate_and_judge(erased_pipe, judge, all_prompts(), JUDGED), [CONCEPT])

    assert after.esr - before.esr >= 50, (before.esr, after.esr)
    assert before.psr - after.psr <= 15, (before.psr, after.psr)
    # Colours are not what was erased; they must survive too.
    assert before.psr_other_axis is not None and after.psr_other_axis is not None
    assert before.psr_other_axis - after.psr_other_axis <= 15, (before, after)
