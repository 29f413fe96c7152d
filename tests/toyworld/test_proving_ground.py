"""The bench scripts end to end (short runs): real engine runs on the committed model, a JSON
report, a grid and a trade-off plot."""

import json
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _run_script(name: str, *args: str) -> None:
    script = BENCH_DIR / name
    argv = sys.argv
    sys.argv = [str(script), *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    if exit_info.value.code not in (0, None):
        raise SystemExit(exit_info.value.code)


def _bench(*args: str) -> None:
    _run_script("proving_ground.py", *args)


def test_quick_bench_on_a_shape_and_a_colour_writes_report_grid_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    _bench("--concept", "circle,red", "--methods", "esd", "--seeds", "1", "--quick", f"--out={out}")
    report = json.loads(out.read_text())
    assert report["concepts"] == ["circle", "red"]
    run = report["methods"]["esd"]["runs"][0]
    assert [point["step"] for point in run["curve"]] == [0, 10, 20]
    assert set(run["final"]["esr_per_concept"]) == {"circle", "red"}
    grid = Image.open(tmp_path / "report_grid.png")
    assert grid.width > 200 and grid.height > 200
    assert Image.open(tmp_path / "report_tradeoff.png").width > 200


def test_bench_refuses_a_concept_outside_the_world(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _bench("--concept", "dog", "--out", str(tmp_path / "r.json"))
    assert exit_info.value.code == 2
