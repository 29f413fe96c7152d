"""The bench script end to end (quick mode): real engine runs on the committed model, a JSON
report, a grid and a trade-off plot."""

import json
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[2] / "bench" / "proving_ground.py"


def _bench(*args: str) -> None:
    argv = sys.argv
    sys.argv = [str(BENCH), *args]
    try:
        runpy.run_path(str(BENCH), run_name="__main__")
    finally:
        sys.argv = argv


def test_quick_bench_on_a_shape_and_a_colour_writes_report_grid_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exit_info:
        _bench(
            "--concept",
            "circle,red",
            "--methods",
            "esd",
            "--seeds",
            "1",
            "--quick",
            "--out",
            str(out),
        )
    assert exit_info.value.code in (0, None)
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
