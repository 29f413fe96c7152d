"""Training of the toy Stable Diffusion: the VAE first, then the UNet and text encoder jointly.

Every run is a fixed number of steps from a fixed seed (never a time budget), so the same seed
rebuilds the same model on the same machine and thread count.
"""

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from core.toyworld.models import build_training_scheduler
from core.toyworld.world import Dataset

Log = Callable[[str], None]
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W float in [-1, 1], the range SD's VAE works in."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _cosine_lr(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Multiplier: linear warm-up, then cosine decay to `floor` of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class VaeTraining:
    steps: int = 1200
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    # Per-element KL weight: small, so reconstructions stay sharp, but non-zero so the latent
    # variance cannot collapse and the latents stay roughly Gaussian for the diffusion model.
    kl_weight: float = 1e-5
    # L1 on image gradients: MSE alone blurs edges, and edges are what tells a star from a blob.
    edge_weight: float = 0.5


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def train_vae(
    vae: AutoencoderKL, data: Dataset, spec: VaeTraining, seed: int, log: Log
) -> AutoencoderKL:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images = images_to_tensor(data.images)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=spec.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _cosine_lr(s, spec.steps, spec.warmup)
    )
    vae.train()
    started = time.monotonic()
    for step in range(spec.steps):
        batch = images[torch.randint(len(images), (spec.batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator)).sample
        mse = F.mse_loss(reconstruction, batch)
        edge = torch.stack(
            [F.l1_loss(a, b) for a, b in zip(_edges(reconstruction), _edges(batch), strict=True)]
        ).sum()
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = mse + spec.edge_weight * edge + spec.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == spec.steps - 1:
            log(
                f"vae {step}/{spec.steps} mse {mse.item():.4f} edge {edge.item():.4f} "
                f"kl {kl.item():.2f} {time.monotonic() - started:.0f}s"
            )
    vae.eval()
    return vae


@torch.no_grad()
def encode_latents(
    vae: AutoencoderKL, data: Dataset, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every picture, computed once so diffusion training never runs
    the encoder."""
    means, stds = [], []
    images = images_to_tensor(data.images)
    for start in range(0, len(images), batch_size):
        posterior = vae.encode(images[start : start + batch_size]).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def latent_scaling_factor(means: torch.Tensor, stds: torch.Tensor, seed: int) -> float:
    """1 / std of sampled latents: SD's `scaling_factor`, measured on our VAE instead of assumed."""
    generator = torch.Generator().manual_seed(seed)
    sample = means + stds * torch.randn(means.shape, generator=generator)
    return float(1.0 / sample.std())


@dataclass(frozen=True)
class DiffusionTraining:
    steps: int = 1600
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    # Classifier-free guidance needs an unconditional model: this share of captions become "".
    caption_dropout: float = 0.1
    # EMA horizon ~ 1/(1-decay) = 200 updates: long enough to smooth, short enough for 1600 steps.
    ema_decay: float = 0.995


class _Ema(Generic[ModuleT]):
    """Exponential moving average of a model's weights, with the usual warm-up so early,
    random weights fade quickly."""

    def __init__(self, model: ModuleT, decay: float) -> None:
        self.model: ModuleT = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: ModuleT, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current, 1 - decay)


def tokenize(tokenizer: CLIPTokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_diffusion(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    latent_means: torch.Tensor,
    latent_stds: torch.Tensor,
    scaling_factor: float,
    captions: list[str],
    spec: DiffusionTraining,
    seed: int,
    log: Log,
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Trains UNet and text encoder jointly on ε-prediction; returns (EMA UNet, text encoder).

    The text encoder is not averaged: the EMA UNet was trained against the moving text encoder,
    which changes slowly at the end of the cosine schedule, and the pair is what gets shipped.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    noise_scheduler = build_training_scheduler()
    token_ids = tokenize(tokenizer, captions)
    empty_ids = tokenize(tokenizer, [""])[0]
    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=spec.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _cosine_lr(s, spec.steps, spec.warmup)
    )
    ema = _Ema(unet, spec.ema_decay)
    unet.train()
    text_encoder.train()
    started = time.monotonic()
    for step in range(spec.steps):
        index = torch.randint(len(token_ids), (spec.batch_size,), generator=generator)
        noise_for_latents = torch.randn(latent_means[index].shape, generator=generator)
        latents = (latent_means[index] + latent_stds[index] * noise_for_latents) * scaling_factor
        ids = token_ids[index].clone()
        dropped = torch.rand(spec.batch_size, generator=generator) < spec.caption_dropout
        ids[dropped] = empty_ids
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(
            len(noise_scheduler.alphas_cumprod), (spec.batch_size,), generator=generator
        )
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)  # type: ignore[arg-type]
        encoded = text_encoder(ids)[0]
        prediction = unet(noisy, timesteps, encoded).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        ema.update(unet, step)
        if step % 100 == 0 or step == spec.steps - 1:
            log(
                f"diffusion {step}/{spec.steps} loss {loss.item():.4f} "
                f"{time.monotonic() - started:.0f}s"
            )
    text_encoder.eval()
    return ema.model, text_encoder
