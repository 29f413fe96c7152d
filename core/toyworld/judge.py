"""The judge: a small CNN that tells the shape and the colour of a toy-world picture.

It plays the role of the paper's ResNet-50 on Imagenette. It is trained on real pictures of the
world, with blur and noise so that the softer pictures a diffusion model produces are still read
for what they show instead of being pushed out of distribution.
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
from core.toyworld.world import COLOUR_NAMES, SHAPES, Dataset

WEIGHTS_FILE = "judge.safetensors"
CONFIG_FILE = "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOUR_NAMES
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
    steps: int = 400
    batch_size: int = 128
    lr: float = 3e-3
    max_blur_sigma: float = 1.0
    max_noise: float = 0.08


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
    return (blurred + noise).clamp(-1, 1)


def train_judge(data: Dataset, spec: JudgeTraining, seed: int, log: Log) -> Judge:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    judge = Judge(JudgeConfig())
    images = images_to_tensor(data.images)
    shapes = torch.from_numpy(data.shapes)
    colours = torch.from_numpy(data.colours)
    optimizer = torch.optim.AdamW(judge.parameters(), lr=spec.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.lr, total_steps=spec.steps)
    judge.train()
    started = time.monotonic()
    for step in range(spec.steps):
        index = torch.randint(len(images), (spec.batch_size,), generator=generator)
        batch = _augment(images[index], spec, generator)
        shape_logits, colour_logits = judge(batch)
        loss = F.cross_entropy(shape_logits, shapes[index]) + F.cross_entropy(
            colour_logits, colours[index]
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
