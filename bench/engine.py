"""Benchmark the erasure engine: AP next to ESD, on the tiny model and on the SD 1.4-shaped one.

One command, one table: per-update wall time, UNet forward calls and samples (batch items) per
update, counted with a forward hook, peak memory while training, and the parameter-memory
accounting (what the engine holds besides the model: the frozen copy of the trained subset, Adam
states, gradients), plus AP/ESD ratios.

    python bench/engine.py                                 # tiny and sd14, CPU or CUDA (auto)
    python bench/engine.py --models tiny --iterations 5    # quick
    python bench/engine.py --device cuda --sd14-ddim-steps 50 --sd14-iterations 5

Each (model, method) cell runs in its own process so that peak memory is that cell's alone. The
run is measured through the engine's public hooks: training starts at the first cancellation poll
and the cell asks to cancel after the measured updates, so no outputs (sample grid) are made and
the clock covers updates only.
"""

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

METHODS = ("esd", "ap")
MODELS = ("tiny", "sd14")
CONCEPT = "a cat"
_GIB = 1 << 30
_MIB = 1 << 20


@dataclass
class Cell:
    model: str
    method: str
    device: str
    updates: int
    ddim_steps: int
    seconds_per_update: float
    unet_calls_per_update: float
    unet_samples_per_update: float
    weights_gib: float  # the pipeline's weight files (UNet, text encoder, VAE)
    tensors_held_gib: float  # every live tensor at the end of the last update (measured)
    peak_memory_gib: float  # high-water mark during the updates (RSS, or CUDA allocated)
    unet_gib: float
    trained_subset_mib: float  # θ' of the subset; the frozen reference θ is one more copy
    engine_state_mib: float  # frozen copy + Adam (2×) + gradients of the subset


# ---- one cell, in its own process ------------------------------------------------------------
def _tensor_bytes_alive() -> int:
    """Bytes of every distinct tensor storage alive now (weights, the frozen copy, optimizer
    states, candidate matrices...). Between updates activations are freed, so a second UNet
    copy would show here as its full size."""
    import torch

    storages: dict[tuple[str, int], int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type != "meta":
            storage = obj.untyped_storage()
            storages[(str(obj.device), storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the RSS high-water mark, so loading is not counted."""
    with contextlib.suppress(OSError):  # not Linux: the peak then includes loading
        Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """Counts UNet forwards and times updates between the first poll and the last progress."""

    def __init__(self, updates: int, device: Any) -> None:
        self.updates, self.device = updates, device
        self.calls = self.samples = 0
        self.counting = False
        self.started = self.finished = 0.0
        self.peak_memory = self.tensors_held = 0
        self.done = 0

    def forward_hook(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        from diffusers import UNet2DConditionModel

        if self.counting and isinstance(module, UNet2DConditionModel):
            self.calls += 1
            self.samples += len(args[0]) if args else 1

    def should_cancel(self) -> bool:
        import torch

        if not self.counting and self.done == 0:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            else:
                _reset_peak_rss()
            self.counting = True
            self.started = time.perf_counter()
        return self.done >= self.updates

    def on_progress(self, progress: Any) -> None:
        import torch

        self.done = progress.step
        if self.done == self.updates:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
                self.peak_memory = torch.cuda.max_memory_allocated()
            else:
                self.peak_memory = _peak_rss_bytes()
            self.finished = time.perf_counter()
            self.tensors_held = _tensor_bytes_alive()
            self.counting = False


def _parameter_accounting(model_dir: Path) -> tuple[int, int]:
    """(UNet bytes, trained-subset bytes for xattn), from the config on the meta device."""
    import torch
    from diffusers import UNet2DConditionModel

    from core.erasure.parameters import trained_parameter_names
    from core.hyperparameters import TrainMethod

    config = UNet2DConditionModel.load_config(model_dir / "unet")
    with torch.device("meta"):
        unet: Any = UNet2DConditionModel.from_config(config)
    sizes = {n: p.numel() * p.element_size() for n, p in unet.named_parameters()}
    subset = trained_parameter_names(unet, TrainMethod.XATTN)
    return sum(sizes.values()), sum(sizes[n] for n in subset)


def run_cell(args: argparse.Namespace) -> Cell:
    import torch

    from core.erasure.models import resolve_device
    from core.erasure.runner import erase
    from core.erasure.types import ErasureConfig, Hooks
    from core.hyperparameters import Hyperparameters

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    meter = Meter(args.iterations, device)
    handle = torch.nn.modules.module.register_module_forward_hook(meter.forward_hook)
    config = ErasureConfig(
        model=str(args.model_dir),
        concepts=[CONCEPT],
        method=args.method,
        train_method="xattn",
        # one more iteration than measured: the cell cancels after the measured ones
        hyperparameters=Hyperparameters(
            iterations=args.iterations + 1,
            ddim_steps=args.ddim_steps,
            vocabulary_size=args.vocabulary_size,
        ),
        device=args.device,
        checkpoint_every=0,
    )
    with tempfile.TemporaryDirectory() as out:
        result = erase(config, Path(out), Hooks(meter.on_progress, meter.should_cancel))
    handle.remove()
    assert result.steps_completed == args.iterations, result
    unet_bytes, subset_bytes = _parameter_accounting(args.model_dir)
    updates = args.iterations
    return Cell(
        model=args.model_name,
        method=args.method,
        device=str(device),
        updates=updates,
        ddim_steps=args.ddim_steps,
        seconds_per_update=(meter.finished - meter.started) / updates,
        unet_calls_per_update=meter.calls / updates,
        unet_samples_per_update=meter.samples / updates,
        weights_gib=sum(f.stat().st_size for f in args.model_dir.rglob("*.safetensors")) / _GIB,
        tensors_held_gib=meter.tensors_held / _GIB,
        peak_memory_gib=meter.peak_memory / _GIB,
        unet_gib=unet_bytes / _GIB,
        trained_subset_mib=subset_bytes / _MIB,
        engine_state_mib=4 * subset_bytes / _MIB,
    )


# ---- the table -------------------------------------------------------------------------------
def _ensure_model(name: str, root: Path) -> Path:
    from core.erasure.tiny import make_tiny_model

    folder = root / name
    if not (folder / "model_index.json").is_file():
        print(f"building the {name} model in {folder} ...", file=sys.stderr)
        make_tiny_model(folder, arch=name)
    return folder


def _spawn(args: argparse.Namespace, name: str, folder: Path, method: str) -> Cell:
    iterations = args.sd14_iterations if name == "sd14" else args.iterations
    ddim_steps = args.sd14_ddim_steps if name == "sd14" else args.ddim_steps
    command = [
        sys.executable,
        __file__,
        "--cell",
        "--model-name", name,
        "--model-dir", str(folder),
        "--method", method,
        "--device", args.device,
        "--iterations", str(iterations),
        "--ddim-steps", str(ddim_steps),
        "--threads", str(args.threads),
        "--vocabulary-size", str(args.vocabulary_size),
    ]  # fmt: skip
    print(f"running {name}/{method} ...", file=sys.stderr)
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return Cell(**json.loads(completed.stdout.strip().splitlines()[-1]))


def table(cells: list[Cell]) -> str:
    header = (
        "| model | method | device | DDIM steps | updates | s / update | UNet calls / update "
        "| UNet samples / update | pipeline weights (GiB) | tensors held after training (GiB) "
        "| peak while training (GiB) "
        "| UNet weights (GiB) | xattn subset (MiB) "
        "| engine state: frozen copy + Adam + grads (MiB) |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for c in cells:
        lines.append(
            f"| {c.model} | {c.method} | {c.device} | {c.ddim_steps} | {c.updates} "
            f"| {c.seconds_per_update:.3f} | {c.unet_calls_per_update:.1f} "
            f"| {c.unet_samples_per_update:.1f} | {c.weights_gib:.3f} | {c.tensors_held_gib:.3f} "
            f"| {c.peak_memory_gib:.2f} | {c.unet_gib:.3f} | {c.trained_subset_mib:.1f} "
            f"| {c.engine_state_mib:.1f} |"
        )
    by_key = {(c.model, c.method): c for c in cells}
    for model in dict.fromkeys(c.model for c in cells):
        ap, esd = by_key.get((model, "ap")), by_key.get((model, "esd"))
        if ap and esd:
            time_ratio = ap.seconds_per_update / esd.seconds_per_update
            lines.append(
                f"| {model} | **AP/ESD** | | | | **{time_ratio:.2f}×** "
                f"| {ap.unet_calls_per_update / esd.unet_calls_per_update:.2f}× "
                f"| {ap.unet_samples_per_update / esd.unet_samples_per_update:.2f}× | "
                f"| {ap.tensors_held_gib / esd.tensors_held_gib:.2f}× "
                f"| {ap.peak_memory_gib / esd.peak_memory_gib:.2f}× | | | |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--iterations", type=int, default=20, help="measured updates (tiny)")
    parser.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps (tiny)")
    parser.add_argument("--sd14-iterations", type=int, default=2, help="measured updates (sd14)")
    parser.add_argument("--sd14-ddim-steps", type=int, default=4, help="DDIM steps (sd14)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per cell")
    parser.add_argument("--vocabulary-size", type=int, default=3000)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "eraser-bench"
    )
    # internal: run one cell and print it as JSON
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-name", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        print(json.dumps(asdict(run_cell(args))))
        return
    cells: list[Cell] = []
    for name in args.models:
        folder = _ensure_model(name, args.work_dir)
        cells.extend(_spawn(args, name, folder, method) for method in METHODS)
    print(table(cells))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
    main()
