"""`eraser apply` refuses deltas that do not fit the base, and warns when the base differs."""

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


def test_cli_warns_when_applied_to_another_base(delta: Path, tmp_path: Path) -> None:
    other = make_tiny_model(tmp_path / "other", seed=7)
    args = ["apply", "--model", str(other), "--delta", str(delta), "--out", str(tmp_path / "p")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert "warning: the delta was trained on a base model with other files" in result.output
