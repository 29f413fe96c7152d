"""A model folder can say how it samples well (sampling_defaults.json); the sample grid follows
it unless the run sets its own steps or guidance, and the manifest records what was used."""

import json
import shutil
from pathlib import Path

import pytest
from erasure_helpers import fast_config

from core.erasure import erase
from core.erasure.models import SAMPLING_DEFAULTS_FILE, SamplingDefaults
from core.erasure.types import ModelNotFoundError


@pytest.fixture
def model_with_defaults(tiny_model: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    SamplingDefaults(steps=2, guidance=3.0).save(model)
    return model


def _grid_used(model: Path, out: Path, **overrides: object) -> dict[str, object]:
    config = fast_config(model, hyperparameters={"iterations": 1}, grid_steps=None, **overrides)
    assert erase(config, out).status == "succeeded"
    return json.loads((out / "manifest.json").read_text())["sample_grid"]


def test_grid_follows_the_models_defaults(model_with_defaults: Path, tmp_path: Path) -> None:
    assert _grid_used(model_with_defaults, tmp_path / "o") == {
        "steps": 2,
        "guidance": 3.0,
        "seed": 0,
    }


def test_the_run_overrides_the_models_defaults(model_with_defaults: Path, tmp_path: Path) -> None:
    used = _grid_used(model_with_defaults, tmp_path / "o", grid_guidance=1.5, seed=4)
    assert used == {"steps": 2, "guidance": 1.5, "seed": 4}


def test_without_the_file_the_grid_uses_sd_defaults(tiny_model: Path) -> None:
    assert SamplingDefaults.load(tiny_model) == SamplingDefaults(steps=25, guidance=7.5)


@pytest.mark.parametrize(
    "content", ["not json", '["a list"]', '{"num_inference_steps": 0}', '{"guidance_scale": "x"}']
)
def test_a_broken_file_is_a_clear_model_error(tmp_path: Path, content: str) -> None:
    (tmp_path / SAMPLING_DEFAULTS_FILE).write_text(content)
    with pytest.raises(ModelNotFoundError, match=SAMPLING_DEFAULTS_FILE):
        SamplingDefaults.load(tmp_path)
