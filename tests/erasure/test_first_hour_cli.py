"""Issue 14 items 2, 3, 5, 6 and 7: the engine CLI as a new user types it from the README."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import main
from core.erasure.cli import format_progress
from core.erasure.models import SAMPLING_DEFAULTS_FILE
from core.erasure.types import Progress

QUICK = ["--ddim-steps", "4", "--k-closest", "17", "--num-centers", "4", "--grid-steps", "1"]
PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\] +(\d+)% \| ETA (\d+s|\d+m\d\ds) \| ", re.MULTILINE)


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_resume_continues_from_the_end_of_the_first_run(tiny_model: Path, tmp_path: Path) -> None:
    """Item 2: `--iterations 10` then `--iterations 20 --resume` retrained from step 1 (no
    checkpoint until update 100). Each run now checkpoints its end, and the second says so."""
    out, cache = str(tmp_path / "o"), str(tmp_path / "c")
    base = ["erase", "--model", str(tiny_model), "--concept", "a cat", *QUICK, "--cache-dir", cache]
    code, output = _invoke(*base, "--resume", "--iterations", "3", "--out", out)
    assert code == 0, output
    assert "--resume: no checkpoint in" in output and "starting from step 1" in output

    code, output = _invoke(*base, "--iterations", "5", "--out", out, "--resume")
    assert code == 0, output
    assert f"resumed from step 3 ({Path(out) / 'checkpoints'})" in output
    assert "succeeded: 5/5 updates (resumed from step 3)" in output
    assert next(int(m[0]) for m in PROGRESS_LINE.findall(output)) == 4  # not step 1 again
    log = (Path(out) / "training_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4, 5]

    # other settings: a clear code, not "checkpoint_corrupt"
    other = [a if a != "a cat" else "a dog" for a in base]
    code, output = _invoke(*other, "--iterations", "6", "--out", out, "--resume")
    assert code == 1
    assert "Error: checkpoint_mismatch: " in output and "other settings (concepts, " in output
    assert "checkpoint_corrupt" not in output


def test_progress_line_has_a_percentage_and_an_eta() -> None:
    """Item 5: `[12/100] 12% | ETA …`: the average time per update times the updates left."""
    line = format_progress(
        Progress(step=25, total=100, losses={"erase": 0.5}, adversarial_concepts={}, elapsed_s=50)
    )
    assert line.startswith("[25/100]  25% | ETA 2m30s | 50s elapsed | erase=0.5")
    assert PROGRESS_LINE.match(line)


def test_bad_flags_are_refused_naming_the_flag_before_torch_is_imported() -> None:
    """Item 6: `--lr 0` printed pydantic's "1 validation error for Hyperparameters" after ~9 s
    of imports; `--device` took any text. Now click names the flag, and torch is never loaded."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from core.cli import main\n"
        "base = ['erase', '--model', 'demo', '--concept', 'ring', '--out', 'o']\n"
        "for extra in (['--lr', '0'], ['--device', 'gpu'], ['--k-closest', '0']):\n"
        "    result = CliRunner().invoke(main, base + extra)\n"
        "    print(result.exit_code, result.output.strip().splitlines()[-1])\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output == [
        "2 Error: Invalid value for '--lr': 0.0 is not in the range 0<x<=0.1.",
        "2 Error: Invalid value for '--device': 'gpu' is not one of auto, cpu, cuda, cuda:N "
        "(e.g. cuda:1)",
        "2 Error: Invalid value for '--k-closest': 0 is not in the range 1<=x<=100000.",
        "torch imported: False",
    ]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Item 3: `eraser erase --model demo` answered `model_not_found … hub id`."""
    out = tmp_path_factory.mktemp("demo") / "o"
    code, output = _invoke(
        "erase", "--model", "demo", "--concept", "ring", "--iterations", "2", *QUICK,
        "--cache-dir", str(out.parent / "c"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, output
    return out


def test_model_demo_works_in_the_cli_and_apply_keeps_its_sampling_defaults(
    demo_run: Path, tmp_path: Path
) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["base_model"]["id"] == "demo"  # the name, as the service writes it
    code, output = _invoke(
        "apply", "--model", "demo", "--delta", str(demo_run / "delta.safetensors"),
        "--out", str(tmp_path / "erased"),
    )  # fmt: skip
    assert code == 0, output
    assert f"erased pipeline written to {tmp_path / 'erased'}" in output
    demo_defaults = json.loads((Path("core/assets/demo") / SAMPLING_DEFAULTS_FILE).read_text())
    written = json.loads((tmp_path / "erased" / SAMPLING_DEFAULTS_FILE).read_text())
    assert written == demo_defaults


def test_apply_onto_another_base_is_refused_unless_forced(
    demo_run: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """Item 7: apply onto the wrong base only warned and exited 0."""
    args = ["apply", "--model", str(tiny_model), "--delta", str(demo_run / "delta.safetensors")]
    code, output = _invoke(*args, "--out", str(tmp_path / "refused"))
    assert code == 1
    assert "Error: wrong_base_model: the delta was trained on 'demo'" in output
    assert "--force" in output and not (tmp_path / "refused").exists()
    # forced: the base check is skipped, not the fit (the demo's UNet is not the tiny one's)
    code, output = _invoke(*args, "--out", str(tmp_path / "forced"), "--force")
    assert "warning: --force: the delta was trained on 'demo'" in output
    assert code == 1 and "delta has parameters this UNet lacks" in output


def test_every_flag_says_what_it_does_and_device_lists_its_choices() -> None:
    """Item 7: `--seed`, `--out`, `--checkpoint-every`, `--delta` had no help; `--device` was
    free text."""
    code, erase_help = _invoke("erase", "--help")
    assert code == 0, erase_help
    code, apply_help = _invoke("apply", "--help")
    assert code == 0, apply_help
    assert "--device [auto|cpu|cuda|cuda:N]" in erase_help
    flat = " ".join(erase_help.split()) + " " + " ".join(apply_help.split())
    assert "--seed INTEGER Seeds training" in flat
    assert "--out DIRECTORY Output folder" in flat
    assert "--checkpoint-every INTEGER RANGE Updates between checkpoints" in flat
    assert "--delta FILE A delta.safetensors" in flat
    assert "--force Apply even if the delta was trained on another base" in flat
