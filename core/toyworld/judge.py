"""The judge: a small CNN that tells the shape and the colour of a toy-world picture, or says
that it shows none of them.

It plays the role of the paper's ResNet-50 on Imagenette. It is trained on real pictures of the
world, with blur and noise so that the softer pictures a diffusion model produces are still read
for what they show, and on negatives (broken, partial, heavily blurred and blended shapes, blobs,
empty pictures, off-palette colours; `core.toyworld.world.make_negatives`) labelled "none" on the
axis they do not show. Without that third answer a damaged shape must be read as some shape, and
an erasure that leaves a smear is scored as if it had drawn a circle.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from core.toyworld.training import Log, images_to_tensor
from core.toyworld.world import COLOUR_NAMES, NEGATIVE_KINDS, NONE, SHAPES, Dataset, Negatives

WEIGHTS_FILE = "judge.safetensors"
CONFIG_FILE = "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    # The last class of each head is NONE; a judge saved before it existed loads without it.
    shapes: tuple[str, ...] = (*SHAPES, NONE)
    colours: tuple[str, ...] = (*COLOUR_NAMES, NONE)
    width: int = 16


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Judge(nn.Module):
    """Input: N×3×32×32 in [-1, 1]. Output: (shape logits, colour logits)."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.features = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w))
        self.shape_head = nn.Linear(4 * w, len(config.shapes))
        self.colour_head = nn.Linear(4 * w, len(config.colours))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(images).mean(dim=(2, 3))
        return self.shape_head(pooled), self.colour_head(pooled)

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, batch_size: int = 512
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted (shape index, colour index) per image."""
        self.eval()
        shapes, colours = [], []
        for start in range(0, len(images), batch_size):
            shape_logits, colour_logits = self(images[start : start + batch_size])
            shapes.append(shape_logits.argmax(1))
            colours.append(colour_logits.argmax(1))
        return torch.cat(shapes), torch.cat(colours)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, folder: Path) -> "Judge":
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = JudgeConfig(
            shapes=tuple(raw["shapes"]), colours=tuple(raw["colours"]), width=raw["width"]
        )
        judge = cls(config)
        judge.load_state_dict(load_file(folder / WEIGHTS_FILE))
        return judge.eval()


@dataclass(frozen=True)
class JudgeTraining:
    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    max_blur_sigma: float = 1.0
    max_noise: float = 0.08
    # Smooth random warps up to this many pixels: a diffusion model's shapes have wobbly edges
    # and uneven arms, which a judge that can say "none" must still read as the shape.
    max_warp_px: float = 1.5
    # Share of each batch drawn from the negatives (when there are any).
    negative_share: float = 0.3


def _augment(batch: torch.Tensor, spec: JudgeTraining, generator: torch.Generator) -> torch.Tensor:
    """Random Gaussian blur (per image) and pixel noise."""
    n = len(batch)
    sigma = torch.rand(n, generator=generator) * spec.max_blur_sigma + 1e-3
    offsets = torch.arange(-2, 3, dtype=torch.float32)
    kernels = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)  # n×5
    # Separable blur as grouped convolutions: one kernel per image, shared by its 3 channels.
    grouped = batch.reshape(1, n * 3, *batch.shape[2:])
    horizontal = kernels.repeat_interleave(3, 0)[:, None, None, :]
    vertical = kernels.repeat_interleave(3, 0)[:, None, :, None]
    grouped = F.conv2d(F.pad(grouped, (2, 2, 0, 0), mode="replicate"), horizontal, groups=n * 3)
    grouped = F.conv2d(F.pad(grouped, (0, 0, 2, 2), mode="replicate"), vertical, groups=n * 3)
    blurred = grouped.reshape(batch.shape)
    noise = torch.randn(batch.shape, generator=generator) * spec.max_noise
    noise = noise * torch.rand(n, 1, 1, 1, generator=generator)
    return _warp(blurred + noise, spec.max_warp_px, generator).clamp(-1, 1)


def _warp(batch: torch.Tensor, max_px: float, generator: torch.Generator) -> torch.Tensor:
    """A smooth random displacement per image (a 4×4 field, upsampled), up to `max_px`."""
    if max_px <= 0:
        return batch
    n, _, h, w = batch.shape
    strength = torch.rand(n, 1, 1, 1, generator=generator) * max_px * 2 / w  # normalised units
    coarse = torch.randn(n, 2, 4, 4, generator=generator) * strength
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), [n, 3, h, w], align_corners=False)
    grid = identity + field.permute(0, 2, 3, 1)
    return F.grid_sample(batch, grid, padding_mode="border", align_corners=False)


def _labels(names: list[str], classes: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([classes.index(n) for n in names], dtype=torch.int64)


def train_judge(
    data: Dataset,
    spec: JudgeTraining,
    seed: int,
    log: Log,
    negatives: Negatives | None = None,
) -> Judge:
    """Real pictures, and with `negatives` the third answer per head; each batch mixes them in
    the proportion `spec.negative_share`."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config = JudgeConfig() if negatives is not None else JudgeConfig(SHAPES, COLOUR_NAMES)
    judge = Judge(config)
    images = images_to_tensor(data.images)
    shapes = torch.from_numpy(data.shapes)  # SHAPES and COLOUR_NAMES are the configs' prefixes
    colours = torch.from_numpy(data.colours)
    n_negative = 0
    if negatives is not None:
        n_negative = round(spec.batch_size * spec.negative_share)
        negative_images = images_to_tensor(negatives.images)
        negative_shapes = _labels(negatives.shapes, config.shapes)
        negative_colours = _labels(negatives.colours, config.colours)
    n_real = spec.batch_size - n_negative
    optimizer = torch.optim.AdamW(judge.parameters(), lr=spec.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.lr, total_steps=spec.steps)
    judge.train()
    started = time.monotonic()
    for step in range(spec.steps):
        index = torch.randint(len(images), (n_real,), generator=generator)
        batch, shape_labels, colour_labels = images[index], shapes[index], colours[index]
        if n_negative:
            pick = torch.randint(len(negative_images), (n_negative,), generator=generator)
            batch = torch.cat([batch, negative_images[pick]])
            shape_labels = torch.cat([shape_labels, negative_shapes[pick]])
            colour_labels = torch.cat([colour_labels, negative_colours[pick]])
        shape_logits, colour_logits = judge(_augment(batch, spec, generator))
        loss = F.cross_entropy(shape_logits, shape_labels) + F.cross_entropy(
            colour_logits, colour_labels
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == spec.steps - 1:
            elapsed = time.monotonic() - started
            log(f"judge {step}/{spec.steps} loss {loss.item():.4f} {elapsed:.0f}s")
    return judge.eval()


def accuracy(
    judge: Judge, images: torch.Tensor, shapes: np.ndarray, colours: np.ndarray
) -> tuple[float, float]:
    """(shape accuracy, colour accuracy) of the judge on labelled images."""
    predicted_shapes, predicted_colours = judge.predict(images)
    return (
        float((predicted_shapes.numpy() == shapes).mean()),
        float((predicted_colours.numpy() == colours).mean()),
    )


def none_report(judge: Judge, negatives: Negatives) -> dict[str, dict[str, float]]:
    """Per kind of negative: the share of the axes labelled NONE that the judge reads as NONE,
    and the share of the other axis (a palette colour, a real shape) it still reads right."""
    predicted_shapes, predicted_colours = judge.predict(images_to_tensor(negatives.images))
    shapes = np.asarray(judge.config.shapes)[predicted_shapes.numpy()]
    colours = np.asarray(judge.config.colours)[predicted_colours.numpy()]
    kinds = np.asarray(negatives.kinds)
    true_shapes, true_colours = np.asarray(negatives.shapes), np.asarray(negatives.colours)
    report: dict[str, dict[str, float]] = {}
    for kind in NEGATIVE_KINDS:
        mask = kinds == kind
        if not mask.any():
            continue
        row: dict[str, float] = {"pictures": float(mask.sum())}
        for axis, read, truth in (
            ("shape", shapes, true_shapes),
            ("colour", colours, true_colours),
        ):
            hit = read[mask] == truth[mask]
            none_label = truth[mask] == NONE
            if none_label.any():
                row[f"{axis}_none"] = float(hit[none_label].mean())
            if (~none_label).any():
                row[f"{axis}_kept"] = float(hit[~none_label].mean())
        report[kind] = row
    return report
