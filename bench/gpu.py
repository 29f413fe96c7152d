"""The prepared GPU measurement: one command, under 8 minutes on one H200, that builds the
SD 1.4-shaped model, runs a short AP and ESD per precision and option, and writes the table that
docs/performance.md quotes.

    bash bench/gpu.sh          # on the GPU box: writes docs/gpu-bench.md (+ .json)
    python bench/gpu.py --device cpu --quick --out /tmp/gpu.md    # end to end on a CPU (tests)

It cannot fail halfway: every cell runs in a try block (a failure becomes a row with its error),
the file is rewritten after every cell, and cells that would not fit the time budget are listed
as skipped instead of run. Cells run in one process: on CUDA the allocator's peak counter is
reset per cell, so each cell's peak is its own; on the CPU (--quick) peaks are indicative only.

Per cell: `warmup` updates (cuDNN autotuning, torch.compile's compilation), then `updates`
measured ones at the default 50 DDIM steps. Columns: s per update, UNet calls and samples per
update (forward hook), peak memory, FLOPs per update from PyTorch's FLOP counter (per-sample
UNet FLOPs counted on the meta device × the samples each call ran; backward counted for calls
that build a graph; checkpointing's recomputation not counted, so it shows as a lower rate) and
the rate achieved, and the 1000-update time extrapolated from the measured updates. The DDIM
index k is drawn per update, so a few updates carry sampling noise: compare rows through the
AP/ESD ratios and the TFLOP/s, which do not depend on k.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import engine

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "gpu-bench.md"


@dataclass(frozen=True)
class Row:
    label: str
    methods: tuple[str, ...]
    precision: str = "bf16"
    option: str = "offload"  # engine.OPTIONS key
    train_method: str = "xattn"
    overrides: dict[str, Any] = field(default_factory=dict)  # more ErasureConfig fields
    updates: int = 2
    warmup: int = 1
    quick: bool = True  # part of --quick


# --quick checks code paths, not numbers: with no warm-up its one update includes `damage`'s
# first scoring, 2·|R_c|·draws UNet forwards, 28 s a cell on a CPU at the engine's 100 centres.
QUICK_HYPERPARAMETERS = {"num_centers": 4}

# In order of importance: the budget skips the tail first.
ROWS = (
    Row("bf16 (default)", ("esd", "ap")),
    Row("fp32 + TF32", ("esd", "ap"), precision="fp32", quick=False),
    Row("fp16 + grad scaler", ("esd", "ap"), precision="fp16"),
    Row("bf16 offload+checkpointing", ("esd", "ap"), option="offload+checkpointing"),
    Row("bf16 share_trajectory", ("ap",), option="share_trajectory"),
    Row("fp32, TF32 off", ("ap",), precision="fp32", overrides={"allow_tf32": False}, quick=False),
    Row("bf16 channels-last", ("ap",), overrides={"channels_last": True}, quick=False),
    Row("noxattn bf16", ("ap",), train_method="noxattn", updates=1, quick=False),
    Row(
        "noxattn bf16 offload+ckpt",
        ("ap",),
        option="offload+checkpointing",
        train_method="noxattn",
        updates=1,
    ),
    Row("full bf16", ("ap",), train_method="full", updates=1, quick=False),
    Row(
        "full bf16 offload+ckpt",
        ("ap",),
        option="offload+checkpointing",
        train_method="full",
        updates=1,
        quick=False,
    ),
    Row("bf16 torch.compile", ("esd", "ap"), overrides={"compile_unet": True}, quick=False),
)


@dataclass
class Result:
    row: str
    method: str
    train_method: str
    cell: dict[str, Any] | None = None
    status: str = "ok"  # ok | failed: ... | skipped: ...


def _environment(device: str) -> dict[str, str]:
    import torch

    from core.erasure.models import resolve_device

    resolved = resolve_device(device)
    name = torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else platform.processor()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "device": f"{resolved} ({name or 'cpu'})",
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "commit": commit,
        "cpu threads": str(torch.get_num_threads()),
    }


HEADER = (
    "| row | train method | method | precision | s / update | UNet calls / update "
    "| UNet samples / update | peak memory (GiB) | TFLOP / update | achieved TFLOP/s "
    "| 1000 updates (min, extrapolated) | status |"
)


def render(results: list[Result], meta: dict[str, str]) -> str:
    lines = ["# GPU bench (written by bench/gpu.py; do not edit by hand)", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", HEADER, "|" + "---|" * (HEADER.count(" | ") + 1)]
    for r in results:
        c = r.cell
        if c is None:
            lines.append(
                f"| {r.row} | {r.train_method} | {r.method} | | | | | | | | | {r.status} |"
            )
            continue
        lines.append(
            f"| {r.row} | {r.train_method} | {r.method} | {c['precision']} "
            f"| {c['seconds_per_update']:.3f} | {c['unet_calls_per_update']:.1f} "
            f"| {c['unet_samples_per_update']:.1f} | {c['peak_memory_gib']:.2f} "
            f"| {c['tflop_per_update']:.3g} | {c['achieved_tflops']:.3g} "
            f"| {c['seconds_per_update'] * 1000 / 60:.1f} | {r.status} |"
        )
    lines += ["", "AP/ESD per row (same process, same settings):", ""]
    lines += ["| row | AP/ESD s / update | AP/ESD UNet calls | AP/ESD TFLOP |", "|---|---|---|---|"]
    by_row: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        if r.cell is not None:
            by_row.setdefault(r.row, {})[r.method] = r.cell
    default_esd = by_row.get(ROWS[0].label, {}).get("esd")
    for label, cells in by_row.items():
        ap, esd = cells.get("ap"), cells.get("esd") or default_esd
        if ap and esd:
            lines.append(
                f"| {label} | {ap['seconds_per_update'] / esd['seconds_per_update']:.2f}× "
                f"| {ap['unet_calls_per_update'] / esd['unet_calls_per_update']:.2f}× "
                f"| {ap['tflop_per_update'] / esd['tflop_per_update']:.2f}× |"
            )
    return "\n".join(lines) + "\n"


def _write(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temp, out)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch._dynamo.reset()  # a compiled UNet of one cell must not linger into the next


def run(args: argparse.Namespace) -> list[Result]:
    import torch

    started = time.perf_counter()
    if args.device.startswith("cpu"):
        torch.set_num_threads(args.threads)
    model_name = "tiny" if args.quick else "sd14"
    folder = engine.ensure_model(model_name, args.work_dir)
    meta = _environment(args.device)
    meta["model"] = f"{model_name} ({folder})"
    meta["DDIM steps"] = str(args.ddim_steps)
    meta["command"] = " ".join(["python", "bench/gpu.py", *sys.argv[1:]])
    available = set(engine.available_options())
    rows = [r for r in ROWS if (r.quick or not args.quick) and (args.with_compile or
            not r.overrides.get("compile_unet"))]  # fmt: skip
    results: list[Result] = []
    flops: dict[str, engine.UnetFlops] = {}
    per_update_guess = 0.0  # slowest measured s/update so far, to skip what will not fit
    for row in rows:
        # --quick checks every code path once: ESD only in the first row (the ratios' base)
        methods = row.methods if not args.quick or row is rows[0] else ("ap",)
        for method in methods:
            result = Result(row.label, method, row.train_method)
            results.append(result)
            elapsed = time.perf_counter() - started
            updates = 1 if args.quick else row.updates
            warmup = 0 if args.quick else row.warmup
            if row.option not in available:
                result.status = "skipped: this engine has no share_trajectory yet"
                continue
            if elapsed + per_update_guess * (updates + warmup) + 15 > args.budget_s:
                result.status = f"skipped: time budget ({args.budget_s:.0f} s) spent"
                continue
            try:
                if row.train_method not in flops:
                    flops[row.train_method] = engine.unet_flops(folder, row.train_method)
                cell = engine.measure(
                    folder,
                    model_name,
                    method,
                    row.option,
                    device=args.device,
                    iterations=updates,
                    warmup=warmup,
                    ddim_steps=args.ddim_steps,
                    precision=row.precision,
                    train_method=row.train_method,
                    config_overrides=row.overrides,
                    hyperparameter_overrides=QUICK_HYPERPARAMETERS if args.quick else None,
                    flops=flops[row.train_method],
                    count_tensors=False,
                )
                result.cell = asdict(cell)
                per_update_guess = max(per_update_guess, cell.seconds_per_update)
            except Exception as error:  # a failed cell is a row, not the end of the run
                result.status = f"failed: {type(error).__name__}: {str(error)[:200]}"
                traceback.print_exc()
            finally:
                _free_memory()
            meta["wall time so far (s)"] = f"{time.perf_counter() - started:.0f}"
            _write(args.out, render(results, meta))
            print(f"{row.label} / {method}: {result.status}", file=sys.stderr, flush=True)
    meta["wall time (s)"] = f"{time.perf_counter() - started:.0f}"
    meta.pop("wall time so far (s)", None)
    _write(args.out, render(results, meta))
    _write(args.out.with_suffix(".json"), json.dumps([asdict(r) for r in results], indent=2))
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 update per cell")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--ddim-steps", type=int, default=None, help="default 50 (quick: 4)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting cells after")
    parser.add_argument("--with-compile", action="store_true", help="compile rows in --quick too")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "eraser-bench"
    )
    args = parser.parse_args(argv)
    if args.ddim_steps is None:
        args.ddim_steps = 4 if args.quick else 50
    if not args.quick:
        args.with_compile = True
    return args


def main(argv: list[str] | None = None) -> None:
    results = run(parse_args(argv))
    failed = [r for r in results if r.status.startswith("failed")]
    print(
        f"{len(results) - len(failed)} cells ok or skipped, {len(failed)} failed", file=sys.stderr
    )


if __name__ == "__main__":
    main()
