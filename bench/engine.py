"""Benchmark the erasure engine: AP next to ESD per memory/speed option, on the tiny model and on
the SD 1.4-shaped one.

One command, one table: per-update wall time, UNet forward calls and samples (batch items) per
update, counted with a forward hook, the FLOPs those calls cost (counted once per model on the
meta device) and the rate achieved, peak memory while training, what stays held, and the
parameter-memory accounting (frozen copy of the trained subset, Adam states, gradients), plus
AP/ESD ratios per option.

    python bench/engine.py                                   # tiny and sd14, CPU or CUDA (auto)
    python bench/engine.py --models tiny --iterations 5      # quick
    python bench/engine.py --models sd14 --sd14-options plain offload+checkpointing
    python bench/engine.py --device cuda --sd14-ddim-steps 50 --sd14-iterations 5

Options (`--options`, `--sd14-options`): plain (everything on the device, no checkpointing: the
engine before these options existed), offload (text encoder and VAE freed while training, the
default), checkpointing, offload+checkpointing, share_trajectory (AP's adversary step reuses the
UNet step's x_t; listed only when the engine has that hyperparameter).

Each cell runs in its own process so that peak memory is that cell's alone (bench/gpu.py runs
them in one process on a GPU, where the allocator's own peak counter is exact). The run is
measured through the engine's public hooks: training starts at the first cancellation poll and
the cell asks to cancel after the measured updates, so no outputs (sample grid) are made and the
clock covers updates only.
"""

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("esd", "ap")
MODELS = ("tiny", "sd14")
CONCEPT = "a cat"
_GIB = 1 << 30
_MIB = 1 << 20

# option name -> (ErasureConfig fields, Hyperparameters fields)
OPTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({"offload": False, "gradient_checkpointing": False}, {}),
    "offload": ({"offload": True, "gradient_checkpointing": False}, {}),
    "checkpointing": ({"offload": False, "gradient_checkpointing": True}, {}),
    "offload+checkpointing": ({"offload": True, "gradient_checkpointing": True}, {}),
    "share_trajectory": (
        {"offload": False, "gradient_checkpointing": False},
        {"share_trajectory": True},
    ),
}


def available_options() -> list[str]:
    """Options this engine supports (share_trajectory only once the engine has it)."""
    from core.hyperparameters import Hyperparameters

    return [
        name
        for name, (_, hyper) in OPTIONS.items()
        if all(key in Hyperparameters.model_fields for key in hyper)
    ]


@dataclass
class Cell:
    model: str
    option: str
    method: str
    device: str
    precision: str
    train_method: str
    updates: int
    ddim_steps: int
    seconds_per_update: float
    unet_calls_per_update: float
    unet_samples_per_update: float
    tflop_per_update: float  # useful FLOPs (checkpointing's recomputation not counted)
    achieved_tflops: float  # tflop_per_update / seconds_per_update
    weights_gib: float  # the pipeline's weight files (UNet, text encoder, VAE)
    tensors_held_gib: float  # every live tensor at the end of the last update (measured)
    peak_memory_gib: float  # high-water mark during the updates (RSS, or CUDA allocated)
    unet_gib: float
    trained_subset_mib: float  # θ' of the subset; the frozen reference θ is one more copy
    engine_state_mib: float  # frozen copy + Adam (2×) + gradients of the subset
    error: str = ""  # set when the cell failed (bench/gpu.py goes on with the next one)
    extra: dict[str, Any] = field(default_factory=dict)


# ---- FLOPs per UNet sample, counted once on the meta device -----------------------------------
@dataclass(frozen=True)
class UnetFlops:
    forward: float  # one sample, no gradient
    train: float  # forward + backward, the train_method's parameters require grad
    adversary: float  # forward + backward to the text conditioning only (θ' constant)


def unet_flops(model_dir: Path, train_method: str) -> UnetFlops:
    """FLOPs of one sample through the model's UNet, counted by PyTorch's FLOP counter on the
    meta device (no memory, no compute: a second on the SD 1.4 shapes)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from core.erasure.parameters import trained_parameter_names
    from core.hyperparameters import TrainMethod

    config = UNet2DConditionModel.load_config(model_dir / "unet")
    text = json.loads((model_dir / "text_encoder" / "config.json").read_text())
    with torch.device("meta"):
        unet: Any = UNet2DConditionModel.from_config(config)
        size = unet.config.sample_size
        z = torch.zeros(1, unet.config.in_channels, size, size)
        e = torch.zeros(1, text["max_position_embeddings"], text["hidden_size"])
        t = torch.zeros(1, dtype=torch.long)
    unet.requires_grad_(False)

    def count(grad_params: list[str], grad_context: bool) -> float:
        for name, parameter in unet.named_parameters():
            parameter.requires_grad_(name in grad_params)
        context = e.clone().requires_grad_(grad_context)
        grad = bool(grad_params) or grad_context
        with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(grad):
            out = unet(z, t, encoder_hidden_states=context).sample
            if out.requires_grad:
                out.sum().backward()
        return float(counter.get_total_flops())

    trained = set(trained_parameter_names(unet, TrainMethod(train_method)))
    return UnetFlops(
        forward=count([], False),
        train=count(list(trained), False),
        adversary=count([], True),
    )


# ---- memory plan: what a run needs, from its parts ---------------------------------------------
@dataclass(frozen=True)
class MemoryParts:
    unet_gib: float
    text_encoder_and_vae_gib: float
    subset_gib: dict[str, float]  # per train_method: one fp32 copy of the trained subset
    activations_gib: dict[tuple[str, bool], float]  # (train_method, checkpointing): per sample


def _attention_probabilities(tensor: Any) -> bool:
    """The softmax output (or a view of it) that the meta device's math attention saves."""
    functions, names = [tensor.grad_fn], set()
    for _ in range(3):  # softmax → expand → view → saved
        functions = [f for f in functions if f is not None]
        names |= {type(f).__name__ for f in functions}
        functions = [g for f in functions for g, _ in f.next_functions]
    return bool(names & {"SoftmaxBackward0", "SafeSoftmaxBackward0"})


def memory_parts(model_dir: Path) -> MemoryParts:
    """Weights from the folder's files; per trained sample, the bytes autograd keeps for
    backward (outside checkpointed blocks), counted on the meta device in fp32 with fused
    attention (the attention probabilities, which SDPA's kernels never store, are left out)."""
    import torch
    from diffusers import UNet2DConditionModel

    from core.erasure.parameters import trained_parameter_names
    from core.hyperparameters import TrainMethod

    config = UNet2DConditionModel.load_config(model_dir / "unet")
    text = json.loads((model_dir / "text_encoder" / "config.json").read_text())
    with torch.device("meta"):
        unet: Any = UNet2DConditionModel.from_config(config)
        size = unet.config.sample_size
        z = torch.zeros(1, unet.config.in_channels, size, size)
        e = torch.zeros(1, text["max_position_embeddings"], text["hidden_size"])
        t = torch.zeros(1, dtype=torch.long)
    parameters = {p.untyped_storage()._cdata for p in unet.parameters()}
    sizes = {n: p.numel() * p.element_size() for n, p in unet.named_parameters()}
    subset: dict[str, float] = {}
    activations: dict[tuple[str, bool], float] = {}
    for method in ("xattn", "noxattn", "full"):
        names = set(trained_parameter_names(unet, TrainMethod(method)))
        subset[method] = sum(sizes[n] for n in names) / _GIB
        for name, parameter in unet.named_parameters():
            parameter.requires_grad_(name in names)
        for checkpointing in (False, True):
            if checkpointing:
                unet.enable_gradient_checkpointing()
            else:
                unet.disable_gradient_checkpointing()
            saved: dict[int, int] = {}

            def pack(tensor: torch.Tensor, saved: dict[int, int] = saved) -> torch.Tensor:
                storage = tensor.untyped_storage()
                if storage._cdata not in parameters and not _attention_probabilities(tensor):
                    saved[storage._cdata] = storage.nbytes()
                return tensor

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                unet(z, t, encoder_hidden_states=e)
            activations[(method, checkpointing)] = sum(saved.values()) / _GIB
    files = {f.parent.name: f.stat().st_size for f in model_dir.rglob("*.safetensors")}
    return MemoryParts(
        unet_gib=sum(sizes.values()) / _GIB,
        text_encoder_and_vae_gib=(files.get("text_encoder", 0) + files.get("vae", 0)) / _GIB,
        subset_gib=subset,
        activations_gib=activations,
    )


def memory_plan(model_dir: Path, transient_gib: float) -> str:
    """AP's device memory per train_method and option, from the parts: UNet weights (fp32
    master), text encoder + VAE unless offloaded, engine state (frozen copy of the subset + Adam's
    two moments + gradients = 4 copies), and activations for the UNet step's two trained samples
    (g_c, g_a); bf16 halves the activations (an estimate until bench/gpu.py measures it), and
    `transient_gib` covers workspace and the largest temporary."""
    parts = memory_parts(model_dir)
    lines = [
        "| train method | precision | offload + checkpointing | weights | engine state "
        "| activations (2 samples) | transient | total (GiB) | 24 GB card | 80 GB card |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    card_24, card_80 = 24e9 / _GIB, 80e9 / _GIB
    for method in ("xattn", "noxattn", "full"):
        for precision, factor in (("fp32", 1.0), ("bf16", 0.5)):
            for lean in (False, True):
                weights = parts.unet_gib + (0 if lean else parts.text_encoder_and_vae_gib)
                state = 4 * parts.subset_gib[method]
                activations = 2 * factor * parts.activations_gib[(method, lean)]
                total = weights + state + activations + transient_gib
                lines.append(
                    f"| {method} | {precision} | {'yes' if lean else 'no'} | {weights:.2f} "
                    f"| {state:.2f} | {activations:.2f} | {transient_gib:.2f} | **{total:.1f}** "
                    f"| {'fits' if total < 0.9 * card_24 else 'no'} "
                    f"| {'fits' if total < 0.9 * card_80 else 'no'} |"
                )
    return "\n".join(lines)


# ---- one cell ---------------------------------------------------------------------------------
def _tensor_bytes_alive() -> int:
    """Bytes of every distinct tensor storage alive now (weights, the frozen copy, optimizer
    states, candidate matrices...). Between updates activations are freed, so a second UNet
    copy would show here as its full size."""
    import torch

    storages: dict[tuple[str, int], int] = {}
    with warnings.catch_warnings():  # isinstance on deprecated torch aliases warns
        warnings.simplefilter("ignore")
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
    """Counts UNet forwards (and their FLOPs) and times the updates after `warmup` ones."""

    def __init__(
        self, updates: int, warmup: int, device: Any, flops: UnetFlops, count_tensors: bool
    ) -> None:
        self.updates, self.warmup, self.device, self.flops = updates, warmup, device, flops
        self.count_tensors = count_tensors
        self.calls = self.samples = 0
        self.flop_count = 0.0
        self.counting = False
        self.started = self.finished = 0.0
        self.peak_memory = self.tensors_held = 0
        self.done = 0

    def forward_hook(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        from diffusers import UNet2DConditionModel

        if not (self.counting and isinstance(module, UNet2DConditionModel)):
            return
        batch = len(args[0]) if args else 1
        self.calls += 1
        self.samples += batch
        sample = getattr(output, "sample", output)
        if not sample.requires_grad:
            per_sample = self.flops.forward
        elif any(p.requires_grad for p in module.parameters()):
            per_sample = self.flops.train
        else:  # the adversary step: gradient to the conditioning only
            per_sample = self.flops.adversary
        self.flop_count += batch * per_sample

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def should_cancel(self) -> bool:
        import torch

        if not self.counting and self.done == self.warmup and not self.finished:
            self._sync()
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            else:
                _reset_peak_rss()
            self.counting = True
            self.started = time.perf_counter()
        return self.done >= self.warmup + self.updates

    def on_progress(self, progress: Any) -> None:
        import torch

        self.done = progress.step
        if self.done == self.warmup + self.updates:
            self._sync()
            self.finished = time.perf_counter()
            if self.device.type == "cuda":
                self.peak_memory = torch.cuda.max_memory_allocated(self.device)
            else:
                self.peak_memory = _peak_rss_bytes()
            if self.count_tensors:  # a scan of every Python object: seconds
                self.tensors_held = _tensor_bytes_alive()
            self.counting = False


def _parameter_accounting(model_dir: Path, train_method: str) -> tuple[int, int]:
    """(UNet bytes, trained-subset bytes), from the config on the meta device."""
    import torch
    from diffusers import UNet2DConditionModel

    from core.erasure.parameters import trained_parameter_names
    from core.hyperparameters import TrainMethod

    config = UNet2DConditionModel.load_config(model_dir / "unet")
    with torch.device("meta"):
        unet: Any = UNet2DConditionModel.from_config(config)
    sizes = {n: p.numel() * p.element_size() for n, p in unet.named_parameters()}
    subset = trained_parameter_names(unet, TrainMethod(train_method))
    return sum(sizes.values()), sum(sizes[n] for n in subset)


def measure(
    model_dir: Path,
    model_name: str,
    method: str,
    option: str,
    *,
    device: str = "auto",
    iterations: int = 1,
    warmup: int = 0,
    ddim_steps: int = 50,
    vocabulary_size: int = 3000,
    precision: str = "auto",
    train_method: str = "xattn",
    config_overrides: dict[str, Any] | None = None,
    hyperparameter_overrides: dict[str, Any] | None = None,
    flops: UnetFlops | None = None,
    count_tensors: bool = True,
) -> Cell:
    """Run `warmup` + `iterations` updates of one (method, option) and measure the last ones."""
    import torch

    from core.erasure.models import resolve_device, resolve_precision
    from core.erasure.runner import erase
    from core.erasure.types import ErasureConfig, Hooks
    from core.hyperparameters import Hyperparameters, Precision

    resolved = resolve_device(device)
    flops = flops or unet_flops(model_dir, train_method)
    meter = Meter(iterations, warmup, resolved, flops, count_tensors)
    fields, hyper = OPTIONS[option]
    config = ErasureConfig(
        model=str(model_dir),
        concepts=[CONCEPT],
        method=method,
        train_method=train_method,
        # one more iteration than measured: the cell cancels after the measured ones
        hyperparameters=Hyperparameters(
            iterations=warmup + iterations + 1,
            ddim_steps=ddim_steps,
            vocabulary_size=vocabulary_size,
            **{**hyper, **(hyperparameter_overrides or {})},
        ),
        device=device,
        precision=precision,
        checkpoint_every=0,
        **{**fields, **(config_overrides or {})},
    )
    handle = torch.nn.modules.module.register_module_forward_hook(meter.forward_hook)
    try:
        with tempfile.TemporaryDirectory() as out:
            result = erase(config, Path(out), Hooks(meter.on_progress, meter.should_cancel))
    finally:
        handle.remove()
    assert result.steps_completed == warmup + iterations, result
    unet_bytes, subset_bytes = _parameter_accounting(model_dir, train_method)
    seconds = (meter.finished - meter.started) / iterations
    tflop = meter.flop_count / iterations / 1e12
    return Cell(
        model=model_name,
        option=option,
        method=method,
        device=str(resolved),
        precision=resolve_precision(Precision(precision), resolved).value,
        train_method=train_method,
        updates=iterations,
        ddim_steps=ddim_steps,
        seconds_per_update=seconds,
        unet_calls_per_update=meter.calls / iterations,
        unet_samples_per_update=meter.samples / iterations,
        tflop_per_update=tflop,
        achieved_tflops=tflop / seconds,
        weights_gib=sum(f.stat().st_size for f in model_dir.rglob("*.safetensors")) / _GIB,
        tensors_held_gib=meter.tensors_held / _GIB,
        peak_memory_gib=meter.peak_memory / _GIB,
        unet_gib=unet_bytes / _GIB,
        trained_subset_mib=subset_bytes / _MIB,
        engine_state_mib=4 * subset_bytes / _MIB,
    )


# ---- the table -------------------------------------------------------------------------------
def ensure_model(name: str, root: Path) -> Path:
    from core.erasure.tiny import make_tiny_model

    folder = root / name
    if not (folder / "model_index.json").is_file():
        print(f"building the {name} model in {folder} ...", file=sys.stderr)
        make_tiny_model(folder, arch=name)
    return folder


def _spawn(args: argparse.Namespace, name: str, folder: Path, method: str, option: str) -> Cell:
    iterations = args.sd14_iterations if name == "sd14" else args.iterations
    ddim_steps = args.sd14_ddim_steps if name == "sd14" else args.ddim_steps
    command = [
        sys.executable,
        __file__,
        "--cell",
        "--model-name", name,
        "--model-dir", str(folder),
        "--method", method,
        "--option", option,
        "--device", args.device,
        "--precision", args.precision,
        "--iterations", str(iterations),
        "--ddim-steps", str(ddim_steps),
        "--threads", str(args.threads),
        "--vocabulary-size", str(args.vocabulary_size),
    ]  # fmt: skip
    print(f"running {name}/{option}/{method} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    cell = Cell(**json.loads(completed.stdout.strip().splitlines()[-1]))
    print(f"  {cell.seconds_per_update:.3f} s/update, peak {cell.peak_memory_gib:.2f} GiB",
          file=sys.stderr, flush=True)  # fmt: skip
    return cell


HEADER = (
    "| model | option | method | device | precision | DDIM steps | updates | s / update "
    "| UNet calls / update | UNet samples / update | TFLOP / update | achieved TFLOP/s "
    "| pipeline weights (GiB) | tensors held after training (GiB) | peak while training (GiB) "
    "| peak / weights | UNet weights (GiB) | trained subset (MiB) "
    "| engine state: frozen copy + Adam + grads (MiB) |"
)


def table(cells: list[Cell]) -> str:
    lines = [HEADER, "|" + "---|" * (HEADER.count(" | ") + 1)]
    for c in cells:
        lines.append(
            f"| {c.model} | {c.option} | {c.method} | {c.device} | {c.precision} "
            f"| {c.ddim_steps} | {c.updates} | {c.seconds_per_update:.3f} "
            f"| {c.unet_calls_per_update:.1f} | {c.unet_samples_per_update:.1f} "
            f"| {c.tflop_per_update:.3g} | {c.achieved_tflops:.3g} "
            f"| {c.weights_gib:.3f} | {c.tensors_held_gib:.3f} | {c.peak_memory_gib:.2f} "
            f"| {c.peak_memory_gib / c.weights_gib:.2f}× | {c.unet_gib:.3f} "
            f"| {c.trained_subset_mib:.1f} | {c.engine_state_mib:.1f} |"
        )
    lines.extend(ratio_rows(cells))
    return "\n".join(lines)


def ratio_rows(cells: list[Cell]) -> list[str]:
    """AP/ESD per (model, option); an option ESD was not run with (share_trajectory changes
    only AP) is compared with ESD's plain cell."""
    by_key = {(c.model, c.option, c.method): c for c in cells}
    rows = []
    for model, option in dict.fromkeys((c.model, c.option) for c in cells):
        ap = by_key.get((model, option, "ap"))
        esd = by_key.get((model, option, "esd")) or by_key.get((model, "plain", "esd"))
        if not (ap and esd):
            continue
        rows.append(
            f"| {model} | {option} | **AP/ESD** | | | | "
            f"| **{ap.seconds_per_update / esd.seconds_per_update:.2f}×** "
            f"| {ap.unet_calls_per_update / esd.unet_calls_per_update:.2f}× "
            f"| {ap.unet_samples_per_update / esd.unet_samples_per_update:.2f}× "
            f"| {ap.tflop_per_update / esd.tflop_per_update:.2f}× | | "
            f"| {ap.tensors_held_gib / esd.tensors_held_gib:.2f}× "
            f"| {ap.peak_memory_gib / esd.peak_memory_gib:.2f}× | | | | |"
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16")
    parser.add_argument("--iterations", type=int, default=20, help="measured updates (tiny)")
    parser.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps (tiny)")
    parser.add_argument("--options", nargs="+", default=None, help="options (tiny); default all")
    parser.add_argument("--sd14-iterations", type=int, default=1, help="measured updates (sd14)")
    parser.add_argument("--sd14-ddim-steps", type=int, default=4, help="DDIM steps (sd14)")
    parser.add_argument("--sd14-options", nargs="+", default=None, help="default: all")
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
    parser.add_argument("--option", help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory-plan",
        type=float,
        metavar="TRANSIENT_GIB",
        help="print what AP needs per train_method on 24/80 GB cards (sd14), with this allowance "
        "for workspace and temporaries, and exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        import torch

        torch.set_num_threads(args.threads)
        cell = measure(
            args.model_dir,
            args.model_name,
            args.method,
            args.option,
            device=args.device,
            iterations=args.iterations,
            ddim_steps=args.ddim_steps,
            vocabulary_size=args.vocabulary_size,
            precision=args.precision,
        )
        print(json.dumps(asdict(cell)))
        return
    if args.memory_plan is not None:
        print(memory_plan(ensure_model("sd14", args.work_dir), args.memory_plan))
        return
    known = available_options()
    cells: list[Cell] = []
    for name in args.models:
        wanted = (args.sd14_options if name == "sd14" else args.options) or known
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise SystemExit(f"unknown or unavailable options {unknown}; this engine has {known}")
        folder = ensure_model(name, args.work_dir)
        for option in wanted:
            hyper = OPTIONS[option][1]
            for method in args.methods:
                if hyper and method == "esd":  # a hyperparameter of AP's adversary only
                    continue
                cells.append(_spawn(args, name, folder, method, option))
    print(table(cells))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
    main()
