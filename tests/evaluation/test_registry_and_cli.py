"""The operator's side: each registered model names its evaluator (`demo` → judge), a bad spec
is refused naming the flag, and `eraser evaluate` says when it cannot judge a concept."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import main
from core.evaluation.cli import EXIT_NOT_EVALUATED
from core.registry import resolve_model
from core.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ERASER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ERASER_MODEL_EVALUATORS", raising=False)
    return tmp_path / "data"


def test_models_carry_their_evaluator(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    clip = tmp_path / "clip"
    clip.mkdir()
    added = runner.invoke(main, ["models", "add", "sd-a", "org/a", "--evaluator", f"clip:{clip}"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(main, ["models", "add", "sd-b", "org/b", "--evaluator", "nudenet:0.3"])
    assert runner.invoke(main, ["models", "add", "sd-c", "org/c"]).exit_code == 0
    settings = Settings()
    assert resolve_model(settings, "demo").evaluator == "judge"
    assert resolve_model(settings, "sd-a").evaluator == f"clip:{clip.resolve()}"
    assert resolve_model(settings, "sd-b").evaluator == "nudenet:0.3"
    assert resolve_model(settings, "sd-c").evaluator is None
    assert resolve_model(settings, "sd-a").source == "org/a"  # the source is unchanged
    listed = runner.invoke(main, ["models", "list"]).stdout
    assert "sd-c\thub\tavailable\torg/c\tno-evaluator" in listed
    # the environment wins, as for sources
    env = Settings(model_evaluators={"sd-c": "judge"})
    assert resolve_model(env, "sd-c").evaluator == "judge"


@pytest.mark.parametrize("spec", ["magic", "clip", "nudenet:7", "judge:/x"])
def test_a_bad_evaluator_is_refused_naming_the_flag(data_dir: Path, spec: str) -> None:
    result = CliRunner().invoke(main, ["models", "add", "sd-x", "org/x", "--evaluator", spec])
    assert result.exit_code == 2 and "--evaluator" in result.output, result.output


def test_evaluate_says_when_the_judge_cannot_read_a_concept(data_dir: Path, tmp_path: Path) -> None:
    erased = tmp_path / "erased"
    erased.mkdir()
    (erased / "manifest.json").write_text(json.dumps({"concepts": ["a cat"]}))
    result = CliRunner().invoke(main, ["evaluate", "--model", "demo", "--erased", str(erased)])
    assert result.exit_code == EXIT_NOT_EVALUATED
    assert "cannot tell whether 'a cat' is shown" in result.output
