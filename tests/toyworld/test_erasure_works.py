"""CI check that erasure works at all, on the committed toy model: the demo's AP run (the
recommended settings, 150 updates) must make the erased shape's prompts stop producing it while
the other shapes stay recognisable.

The shape is `ring`. Not every shape erases this well in 150 updates (docs/quality.md §2: circle,
square, star and cross stop at ESR 40-80 for every method). The run is the whole 150 updates, not
the 100 it was once: with R_c holding all 17 toy words, ring's kept shapes dip at update 100 on
two of three seeds (shape PSR −20 and −20 from the base) and recover by 150 (−11 and −12)."""

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
    erased_pipe = erase_demo_model([CONCEPT], Recommended.load().hyperparameters, tmp_path)

    before = score(generate_and_judge(demo_pipeline, judge, all_prompts(), JUDGED), [CONCEPT])
    after = score(generate_and_judge(erased_pipe, judge, all_prompts(), JUDGED), [CONCEPT])

    assert after.esr - before.esr >= 50, (before.esr, after.esr)
    assert before.psr - after.psr <= 15, (before.psr, after.psr)
    # Colours are not what was erased; they must survive too.
    assert before.psr_other_axis is not None and after.psr_other_axis is not None
    assert before.psr_other_axis - after.psr_other_axis <= 15, (before, after)
