"""Must show 8 (the part that fits in CI): the benchmark runs to its table on the CPU, counts real
UNet forwards, and shows AP next to ESD with their ratio. The sd14-shaped table is in
docs/performance.md (minutes on a CPU: too slow for CI)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"


def test_bench_prints_the_ap_esd_table(tmp_path: Path) -> None:
    options = "--models tiny --iterations 2 --ddim-steps 4 --vocabulary-size 100"
    command = [sys.executable, str(BENCH), *options.split(), "--work-dir", str(tmp_path)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [line.split("|")[1:-1] for line in output.splitlines() if line.startswith("| tiny")]
    cells = {row[1].strip(): [c.strip() for c in row] for row in rows}
    assert set(cells) == {"esd", "ap", "**AP/ESD**"}
    esd_calls, ap_calls = float(cells["esd"][6]), float(cells["ap"][6])
    # ESD: ≥ 1 frozen + 1 live forward per update; AP adds a preservation branch and an adversary
    # step, each with its own forwards
    assert esd_calls >= 2 and ap_calls > esd_calls
    assert float(cells["ap"][7]) > float(cells["esd"][7])  # more samples (batch items) too
    for method in ("esd", "ap"):
        weights, held, peak = (float(cells[method][i]) for i in (8, 9, 10))
        assert weights <= held < 2 * weights  # the weights, and no second copy of them
        assert peak > 0
