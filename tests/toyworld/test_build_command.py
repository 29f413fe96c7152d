"""`eraser toyworld build --quick`: the rebuild command writes a loadable pipeline, the judge and
a report (the full build is the same code with more steps)."""

import json
from pathlib import Path

from click.testing import CliRunner
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

from core.cli import main
from core.erasure.models import SamplingDefaults
from core.toyworld.build import BuildConfig
from core.toyworld.judge import Judge


def test_quick_build_writes_pipeline_judge_and_report(tmp_path: Path) -> None:
    model_dir, assets_dir = tmp_path / "demo", tmp_path / "assets"
    result = CliRunner().invoke(
        main,
        [
            "toyworld",
            "build",
            "--quick",
            "--threads",
            "1",
            "--model-dir",
            str(model_dir),
            "--assets-dir",
            str(assets_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    pipe = StableDiffusionPipeline.from_pretrained(model_dir)
    assert pipe.unet.config.sample_size == 8 and pipe.vae.config.latent_channels == 4
    judged_at = BuildConfig().quick().sampling  # grids sample the way the build judges
    assert SamplingDefaults.load(model_dir) == SamplingDefaults(
        steps=judged_at.steps, guidance=judged_at.guidance
    )
    Judge.load(assets_dir)
    report = json.loads((assets_dir / "build_report.json").read_text())
    assert set(report["wall_time_s"]) >= {"judge", "vae", "diffusion", "evaluation", "total"}
    assert report["config"]["seed"] == 0
