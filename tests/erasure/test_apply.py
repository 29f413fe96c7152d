"""`eraser apply` refuses deltas that do not fit the base, and a base other than the delta's own
unless forced."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from erasure_helpers import fast_config
from safetensors.torch import load_file, save_file

from core.cli import main
from core.erasure.apply import apply_delta
from core.erasure.runner import erase
from core.erasure.tiny import make_tiny_model
from core.erasure.types import ErasureError


@pytest.fixture(scope="module")
def delta(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("apply")
    erase(fast_config(tiny_model, hyperparameters={"iterations": 1}), out)
    return out / "delta.safetensors"


def test_wrong_shape_or_unknown_name_is_refused(
    tiny_model: Path, delta: Path, tmp_path: Path
) -> None:
    values = load_file(delta)
    name = next(iter(values))
    save_file({**values, name: torch.zeros(3, 3)}, tmp_path / "shape.safetensors")
    with pytest.raises(ErasureError, match="shape"):
        apply_delta(str(tiny_model), tmp_path / "shape.safetensors", tmp_path / "a")
    save_file({**values, "no.such.weight": torch.zeros(1)}, tmp_path / "name.safetensors")
    with pytest.raises(ErasureError, match=r"no\.such\.weight"):
        apply_delta(str(tiny_model), tmp_path / "name.safetensors", tmp_path / "b")


def test_cli_refuses_another_base_of_the_same_shape_unless_forced(
    delta: Path, tmp_path: Path
) -> None:
    other = make_tiny_model(tmp_path / "other", seed=7)  # same names and shapes, other weights
    args = ["apply", "--model", str(other), "--delta", str(delta)]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "p")])
    assert refused.exit_code == 1
    assert "wrong_base_model: the delta was trained on" in refused.output
    assert not (tmp_path / "p").exists()
    forced = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "p"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "warning: --force: the delta was trained on" in forced.output
    assert (tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
