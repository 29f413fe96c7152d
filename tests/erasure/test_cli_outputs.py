"""Must show 1: the documented CLI run on the tiny model writes every output, within a minute;
`eraser apply` of the delta rebuilds exactly the saved UNet, and that pipeline generates images."""

import json
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from safetensors.torch import load_file

from core.cli import main
from core.erasure.outputs import _HEADER_HEIGHT as HEADER
from core.erasure.outputs import DEFAULT_CONTROL_PROMPTS, GRID_ADVERSARIAL_ROWS
from core.erasure.parameters import trained_parameter_names
from core.hyperparameters import Hyperparameters, TrainMethod

EXPECTED = {
    "delta.safetensors",
    "unet",
    "manifest.json",
    "adversarial_concepts.json",
    "training_log.jsonl",
    "samples.png",
}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """`eraser make-tiny-model m && eraser erase --model m --concept "a cat" --method ap
    --iterations 10 --out o`, as a user types it (default hyperparameters otherwise)."""
    root = tmp_path_factory.mktemp("cli")
    runner = CliRunner(env={"ERASER_CACHE_DIR": str(root / "cache")})
    started = time.perf_counter()
    made = runner.invoke(main, ["make-tiny-model", str(root / "m")])
    assert made.exit_code == 0, made.output
    args = ["--model", str(root / "m"), "--concept", "a cat", "--method", "ap"]
    erased = runner.invoke(main, ["erase", *args, "--iterations", "10", "--out", str(root / "o")])
    assert erased.exit_code == 0, erased.output
    assert "[10/10]" in erased.output and "succeeded" in erased.output
    assert len(list((root / "cache").glob("embeddings-*.safetensors"))) == 1  # reused next time
    assert len(list((root / "cache" / "content-hashes").iterdir())) == 1  # so is the model hash
    return root / "m", root / "o", time.perf_counter() - started


def test_cli_run_is_fast_and_writes_every_output(cli_run: tuple[Path, Path, float]) -> None:
    _, out, seconds = cli_run
    assert seconds < 60
    assert {p.name for p in out.iterdir()} >= EXPECTED
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_manifest_records_the_run(cli_run: tuple[Path, Path, float]) -> None:
    model, out, _ = cli_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["base_model"]["id"] == str(model)
    assert len(manifest["base_model"]["content_hash"]) == 64
    assert manifest["method"] == "ap" and manifest["train_method"] == "xattn"
    expected = Hyperparameters(iterations=10, loss_space="x0").model_dump(mode="json")
    assert manifest["hyperparameters"] == expected  # AP's own loss space, named explicitly
    assert manifest["seed"] == 0 and manifest["device"] == "cpu"
    assert {"torch", "diffusers", "transformers"} <= set(manifest["libraries"])
    assert manifest["wall_time_s"] > 0
    # the default `damage` adversary takes no gradient steps, so there is no adversary loss
    assert set(manifest["final_losses"]) == {"erase", "preserve", "loss"}
    # the tiny model has no sampling_defaults.json: SD's usual grid settings
    assert manifest["sample_grid"] == {"steps": 25, "guidance": 7.5, "seed": 0}


def test_delta_holds_only_the_trained_subset(cli_run: tuple[Path, Path, float]) -> None:
    _, out, _ = cli_run
    delta = load_file(out / "delta.safetensors")
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    assert sorted(delta) == sorted(trained_parameter_names(unet, TrainMethod.XATTN))
    saved = dict(unet.named_parameters())
    assert all(torch.equal(delta[name], saved[name]) for name in delta)


def test_adversarial_report_and_log(cli_run: tuple[Path, Path, float]) -> None:
    _, out, _ = cli_run
    report = json.loads((out / "adversarial_concepts.json").read_text())
    assert list(report) == ["a cat"]
    candidates = report["a cat"]["candidates"]
    assert candidates and all(
        set(c) == {"word", "distance", "probability", "draws"} for c in candidates
    )
    # one draw per UNet step (the default `damage` adversary takes no adversary steps)
    assert sum(c["draws"] for c in candidates) == 10
    assert abs(sum(c["probability"] for c in candidates) - 1) < 1e-5
    top = report["a cat"]["top"]
    assert len(top) == min(10, len(candidates))
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11))
    assert all(r["adversarial_concept"] in {c["word"] for c in candidates} for r in log)


def test_sample_grid_is_base_left_erased_right(cli_run: tuple[Path, Path, float]) -> None:
    _, out, _ = cli_run
    grid = Image.open(out / "samples.png")
    rows = 1 + GRID_ADVERSARIAL_ROWS + len(DEFAULT_CONTROL_PROMPTS)
    cell = 96  # the tiny model's 32×32 images, enlarged 3× to be visible
    assert grid.height == HEADER + rows * cell
    left = grid.crop((grid.width - 2 * cell, HEADER, grid.width - cell, grid.height))
    right = grid.crop((grid.width - cell, HEADER, grid.width, grid.height))
    assert left.tobytes() != right.tobytes()  # the erased model draws something else


def test_apply_rebuilds_the_saved_unet_and_generates(
    cli_run: tuple[Path, Path, float], tmp_path: Path
) -> None:
    model, out, _ = cli_run
    result = CliRunner().invoke(
        main,
        [
            "apply",
            "--model",
            str(model),
            "--delta",
            str(out / "delta.safetensors"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert result.exit_code == 0, result.output
    applied = load_file(tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors")
    saved = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert applied.keys() == saved.keys()
    assert all(torch.equal(applied[k], saved[k]) for k in saved)
    base = load_file(model / "unet" / "diffusion_pytorch_model.safetensors")
    assert not all(torch.equal(applied[k], base[k]) for k in base)

    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "p", safety_checker=None)
    image = pipeline("a cat", num_inference_steps=2, output_type="pil").images[0]
    assert image.size == (32, 32)


def test_cli_flags_reach_the_run(tiny_model: Path, tmp_path: Path) -> None:
    """Generated hyperparameter flags, a vocabulary file and two concepts reach the run."""
    (tmp_path / "words.txt").write_text("# candidates\ncat\ndog\nhouse\ntree\ncar\ntruck\nchurch\n")
    args = f"""erase --model {tiny_model} --concept cat --concept church --method ap
        --train-method xattn_kv --iterations 2 --ddim-steps 4 --k-closest 4 --num-centers 2
        --adversary-lr 0.05 --loss-space eps --seed 3 --device cpu --grid-steps 1
        --vocabulary {tmp_path / "words.txt"} --sample-prompt tree --cache-dir {tmp_path / "c"}
        --out {tmp_path / "o"}""".split()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    h = manifest["hyperparameters"]
    assert (h["ddim_steps"], h["k_closest"], h["num_centers"]) == (4, 4, 2)
    assert (h["adversary_lr"], h["loss_space"], h["lr"]) == (0.05, "eps", 1e-5)  # lr: default
    assert (manifest["seed"], manifest["train_method"]) == (3, "xattn_kv")
    assert (manifest["vocabulary"]["source"], manifest["vocabulary"]["size"]) == ("user", 5)
    report = json.loads((tmp_path / "o" / "adversarial_concepts.json").read_text())
    words = {"dog", "house", "tree", "car", "truck"}
    assert set(report) == {"cat", "church"}
    assert all({c["word"] for c in r["candidates"]} <= words for r in report.values())
