"""Architectures of the toy Stable Diffusion: the same diffusers/transformers classes as SD 1.x,
shrunk until the whole pipeline trains on two CPU cores.

Choices that matter (measured on the prototype, see the issue):
- VAE (16, 32, 64) with 4 norm groups, so every group has ≥ 4 channels; one channel per group
  normalises each channel on its own and the decoder loses colour.
- Three VAE blocks → two downsamplings → 8×8×4 latents for 32×32 images (SD's factor is 8, ours 4).
- UNet (32, 64, 128) with cross-attention in the two upper levels and the mid block, so
  `attn2.*` exists where the engine's `xattn` train method expects it.
- CLIPTextModel of width 64, two layers, trained jointly with the UNet from scratch.
- SD's scaled-linear β schedule (0.00085 → 0.012, 1000 steps), DDIM for sampling.
"""

from pathlib import Path

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from core.erasure.word_tokenizer import write_word_tokenizer
from core.toyworld.world import IMAGE_SIZE, VOCABULARY

LATENT_CHANNELS = 4
TEXT_WIDTH = 64
MAX_TOKENS = 77  # SD's prompt length; the engine pads every prompt to the tokenizer's maximum

# SD 1.x noise schedule, shared by the training scheduler and the shipped sampler.
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


def build_tokenizer(path: Path) -> CLIPTokenizer:
    """A CLIP tokenizer in which every toy-world word is exactly one token."""
    write_word_tokenizer(VOCABULARY, path, model_max_length=MAX_TOKENS)
    return CLIPTokenizer.from_pretrained(path)


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
    )


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        layers_per_block=1,
        block_out_channels=(32, 64, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULE, prediction_type="epsilon", clip_sample=False)  # type: ignore[arg-type]


def build_sampling_scheduler() -> DDIMScheduler:
    """SD 1.x's DDIM settings, the scheduler the saved pipeline samples with by default."""
    return DDIMScheduler(
        **SCHEDULE,  # type: ignore[arg-type]
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )
