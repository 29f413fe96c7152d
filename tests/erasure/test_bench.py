"""The benchmark runs to its table on the CPU, counts real UNet forwards and their FLOPs, and
shows AP next to ESD with their ratio per option. The sd14-shaped table is in
docs/performance.md (minutes on a CPU: too slow for CI). The prepared GPU script runs end to
end on the CPU in quick mode, so it cannot rot before a GPU is at hand."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _rows(output: str, model: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith(f"| {model} ")]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in lines]


def test_bench_prints_the_ap_esd_table(tmp_path: Path) -> None:
    options = "--models tiny --options plain --iterations 2 --ddim-steps 4 --vocabulary-size 100"
    command = [sys.executable, str(BENCH / "engine.py"), *options.split()]
    command += ["--work-dir", str(tmp_path)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout
    cells = {row[2]: row for row in _rows(output, "tiny")}
    assert set(cells) == {"esd", "ap", "**AP/ESD**"}
    assert all(row[1] == "plain" for row in cells.values())
    esd_calls, ap_calls = float(cells["esd"][8]), float(cells["ap"][8])
    # ESD: ≥ 1 frozen + 1 live forward per update; AP adds a preservation branch and an adversary
    # step, each with its own forwards
    assert esd_calls >= 2 and ap_calls > esd_calls
    assert float(cells["ap"][9]) > float(cells["esd"][9])  # more samples (batch items) too
    assert float(cells["ap"][10]) > float(cells["esd"][10]) > 0  # and more FLOPs
    for method in ("esd", "ap"):
        weights, held, peak = (float(cells[method][i]) for i in (12, 13, 14))
        assert weights <= held < 2 * weights  # the weights, and no second copy of them
        assert peak > 0
    # The ratio is taken before rounding, the cells after (3 decimals): it must lie within what
    # the printed cells allow, plus the ratio's own rounding
    ratio = float(cells["**AP/ESD**"][7].strip("*×"))
    ap, esd = float(cells["ap"][7]), float(cells["esd"][7])
    half = 0.0005
    assert (ap - half) / (esd + half) - 0.005 <= ratio <= (ap + half) / (esd - half) + 0.005


def test_gpu_script_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    command = [sys.executable, str(BENCH / "gpu.py"), "--device", "cpu", "--quick"]
    command += ["--out", str(out), "--work-dir", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    text = out.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| row |"))
    for column in ("s / update", "UNet calls / update", "peak memory (GiB)", "TFLOP / update",
                   "achieved TFLOP/s", "1000 updates (min, extrapolated)"):  # fmt: skip
        assert column in header
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| bf16 (def")]
    by_method = {row[2].strip(): row for row in rows if len(row) == 12}
    assert set(by_method) == {"esd", "ap"}
    for row in by_method.values():
        assert row[-1].strip() == "ok"
        assert float(row[4]) > 0 and float(row[9]) > 0  # s / update, TFLOP/s
    statuses = [line.split("|")[-2].strip() for line in text.splitlines() if "xattn |" in line]
    assert not [s for s in statuses if s.startswith("failed")], text
    for label in ("fp16 + grad scaler", "bf16 offload+checkpointing", "noxattn bf16 offload+ckpt"):
        assert f"| {label} |" in text
    assert "| bf16 (default) | " in text.split("AP/ESD per row")[1]  # the ratio table
    assert out.with_suffix(".json").is_file()
