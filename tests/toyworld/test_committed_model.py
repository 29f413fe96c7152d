"""The committed toy model and judge: they load as a real SD pipeline and meet the quality bar."""

import json

import numpy as np
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from transformers import CLIPTextModel

from core.erasure.models import SamplingDefaults
from core.erasure.vocabulary import tokenizer_words
from core.toyworld.evaluate import SamplingSettings, all_prompts, generate_and_judge
from core.toyworld.judge import Judge, accuracy
from core.toyworld.paths import BUILD_REPORT_FILE, DEMO_MODEL_DIR
from core.toyworld.recommended import Recommended
from core.toyworld.training import images_to_tensor
from core.toyworld.world import COLOUR_NAMES, SHAPES, VOCABULARY, make_dataset


def test_demo_folder_is_a_stable_diffusion_pipeline() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(DEMO_MODEL_DIR)
    assert isinstance(pipe.unet, UNet2DConditionModel)
    assert isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    assert any("attn2" in name for name, _ in pipe.unet.named_parameters())
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    weights = sorted(p.name for p in DEMO_MODEL_DIR.rglob("*.safetensors"))
    assert weights == ["diffusion_pytorch_model.safetensors"] * 2 + ["model.safetensors"]


def test_demo_model_samples_its_grids_at_the_setting_it_is_judged_at() -> None:
    """SD's CFG 7.5 over-saturates this model; its folder says so for the engine's grids."""
    judged_at = Recommended.load().sampling
    assert SamplingDefaults.load(DEMO_MODEL_DIR) == SamplingDefaults(
        steps=judged_at.steps, guidance=judged_at.guidance
    )


def test_every_toy_word_is_one_token_and_the_candidates_are_the_worlds_words(
    demo_pipeline: StableDiffusionPipeline,
) -> None:
    tokenizer = demo_pipeline.tokenizer
    for word in VOCABULARY:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    words = tokenizer_words(tokenizer, 3000)
    assert words[: len(SHAPES) + len(COLOUR_NAMES)] == [*SHAPES, *COLOUR_NAMES]
    assert set(words) == {w for w in VOCABULARY if len(w) >= 3}


def test_judge_reads_real_pictures_at_least_98_percent(judge: Judge) -> None:
    fresh = make_dataset(720, seed=12345)  # a seed the build never used
    shape, colour = accuracy(judge, images_to_tensor(fresh.images), fresh.shapes, fresh.colours)
    assert shape >= 0.98 and colour >= 0.98, (shape, colour)


def test_generated_pictures_show_the_prompted_shape_and_colour(
    demo_pipeline: StableDiffusionPipeline, judge: Judge
) -> None:
    judged = generate_and_judge(
        demo_pipeline, judge, all_prompts(), SamplingSettings(images_per_caption=3, first_seed=77)
    )
    assert judged.images.shape == (len(SHAPES) * len(COLOUR_NAMES) * 3, 3, 32, 32)
    assert judged.shape_correct().mean() >= 0.85
    assert judged.colour_correct().mean() >= 0.85


def test_build_report_records_the_acceptance_numbers() -> None:
    report = json.loads(BUILD_REPORT_FILE.read_text())
    generated = report["accuracy"]["generated"]
    assert generated["shape"] >= 0.90 and generated["colour"] >= 0.90
    real = report["accuracy"]["judge_on_real"]
    assert real["shape"] >= 0.98 and real["colour"] >= 0.98
    assert report["wall_time_s"]["total"] > 0
    assert np.isfinite(report["latent_scaling_factor"])
