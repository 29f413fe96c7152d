"""`erase`: one erasure run from config to outputs, with hooks, checkpoints and resume."""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.erasure.adversary import Adversary
from core.erasure.candidates import select_candidates
from core.erasure.checkpoints import CHECKPOINTS_DIR, load_latest_checkpoint, save_checkpoint
from core.erasure.models import (
    BaseModel,
    configure_device,
    load_base_model,
    offload_parts,
    resolve_device,
    resolve_precision,
    restore_parts,
    speed_up_unet,
    translate_oom,
)
from core.erasure.outputs import (
    DEFAULT_CONTROL_PROMPTS,
    GridSettings,
    final_losses,
    library_versions,
    write_outputs,
)
from core.erasure.parameters import TrainedSubset
from core.erasure.quiet import quiet_libraries
from core.erasure.sampling import DdimGrid
from core.erasure.trainer import Trainer, TrainingSetup
from core.erasure.types import (
    CheckpointMismatchError,
    ErasureConfig,
    ErasureError,
    ErasureResult,
    Hooks,
    Progress,
)
from core.erasure.vocabulary import (
    cached_embeddings,
    check_concept,
    closed_vocabulary,
    default_vocabulary,
    embed,
    exclude_erased,
    vocabulary_hash,
)
from core.hyperparameters import Method


@dataclass
class PreparedRun:
    setup: TrainingSetup
    fingerprint: dict[str, Any]  # what a checkpoint must match to be resumed by this run
    vocabulary: dict[str, Any]  # source, size and hash, for the manifest
    warnings: list[str]  # settings the engine had to change, for the manifest and the result


def _vocabulary(config: ErasureConfig, base: BaseModel, concepts: list[str]) -> list[str]:
    """W: the user's list or the default (English words the tokenizer encodes whole), minus the
    erased concepts and their forms."""
    h = config.hyperparameters
    tokenizer = base.pipeline.tokenizer
    words = (
        config.vocabulary
        if config.vocabulary is not None
        else default_vocabulary(tokenizer, h.vocabulary_size)
    )
    kept = exclude_erased(words, concepts)
    if not kept:
        raise ErasureError(
            "the candidate vocabulary is empty once the erased concepts are removed; "
            "pass a vocabulary with other concepts"
        )
    return kept


def _adversaries(
    config: ErasureConfig,
    base: BaseModel,
    concepts: list[str],
    concept_embeddings: list[torch.Tensor],
    words: list[str],
    device: torch.device,
) -> list[Adversary]:
    """One candidate set R_c, M_c and one π_c per erased concept."""
    h = config.hyperparameters
    pipeline = base.pipeline
    word_embeddings = cached_embeddings(
        pipeline.text_encoder, pipeline.tokenizer, words, base.content_hash, config.cache_dir
    )
    adversaries = []
    for concept, embedding in zip(concepts, concept_embeddings, strict=True):
        candidates = select_candidates(
            concept, embedding, words, word_embeddings, h.k_closest, h.num_centers
        )
        adversaries.append(Adversary.uniform(candidates, device))
    return adversaries


def clamp_warnings(config: ErasureConfig, vocabulary_size: int) -> list[str]:
    """What candidate selection will cut (K to the vocabulary, the centres to K), said aloud:
    a default K of 1000 on an 18-word model is otherwise a silent change of method."""
    h = config.hyperparameters
    source = "the given vocabulary" if config.vocabulary is not None else "the tokenizer's"
    k = min(h.k_closest, vocabulary_size)
    warnings = []
    if h.k_closest > k:
        warnings.append(
            f"k_closest {h.k_closest} is more than the {vocabulary_size} candidate words "
            f"({source}, minus the erased concepts): used {k}"
        )
    if h.num_centers > k:
        warnings.append(f"num_centers {h.num_centers} is more than the {k} candidates: used {k}")
    return warnings


def prepare(config: ErasureConfig, base: BaseModel, device: torch.device) -> PreparedRun:
    """Concept checks, embeddings, candidates, trained subset, DDIM grid."""
    pipeline = base.pipeline
    concepts = list(dict.fromkeys(c.strip() for c in config.concepts))
    known = closed_vocabulary(pipeline.tokenizer)
    for concept in config.concepts:
        check_concept(pipeline.tokenizer, concept, known)
    embeddings = embed(pipeline.text_encoder, pipeline.tokenizer, ["", *concepts])
    empty, concept_embeddings = embeddings[:1], [e.unsqueeze(0) for e in embeddings[1:]]
    h = config.hyperparameters.for_method(config.method)
    words: list[str] = []
    adversaries: list[Adversary] = []
    warnings: list[str] = []
    if config.method == Method.AP:
        words = _vocabulary(config, base, concepts)
        warnings = clamp_warnings(config, len(words))
        adversaries = _adversaries(config, base, concepts, concept_embeddings, words, device)
    unet = pipeline.unet
    speed_up_unet(unet, device, config.channels_last, config.compile_unet)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    grid = DdimGrid(base.scheduler.alphas_cumprod.double().cpu(), h.ddim_steps)
    if grid.stride < 1:
        raise ErasureError(f"ddim_steps {h.ddim_steps} exceeds the {grid.train_timesteps} steps")
    sample_size = unet.config.sample_size
    setup = TrainingSetup(
        unet=unet,
        subset=TrainedSubset(unet, config.train_method),
        grid=grid,
        hyperparameters=h,
        method=config.method,
        device=device,
        precision=resolve_precision(config.precision, device),
        concepts=concepts,
        concept_embeddings=concept_embeddings,
        empty_embedding=empty,
        adversaries=adversaries,
        latent_shape=(1, unet.config.in_channels, sample_size, sample_size),
    )
    if config.method == Method.ESD:
        source = "none (esd)"
    else:
        source = "user" if config.vocabulary is not None else "default"
    vocabulary = {
        "source": source,
        "size": len(words),
        "hash": vocabulary_hash(words),
    }
    fingerprint = {
        "model_hash": base.content_hash,
        "concepts": concepts,
        "method": config.method.value,
        "train_method": config.train_method.value,
        "hyperparameters": h.model_dump(mode="json", exclude={"iterations"}),
        "seed": config.seed,
        "precision": setup.precision.value,
        "vocabulary_hash": vocabulary["hash"],
    }
    return PreparedRun(setup, fingerprint, vocabulary, warnings)


def _manifest(
    config: ErasureConfig,
    base: BaseModel,
    run: PreparedRun,
    trainer: Trainer,
    grid: GridSettings,
    wall_s: float,
) -> dict[str, Any]:
    return {
        "base_model": {
            "id": config.model_name or base.model_id,
            "content_hash": base.content_hash,
        },
        "concepts": run.setup.concepts,
        "method": config.method.value,
        "train_method": config.train_method.value,
        "trained_parameters": len(run.setup.subset.names),
        "hyperparameters": run.setup.hyperparameters.model_dump(mode="json"),
        "seed": config.seed,
        "precision": run.setup.precision.value,
        "device": str(run.setup.device),
        "vocabulary": run.vocabulary,
        "libraries": library_versions(),
        "steps": trainer.step,
        "training_time_s": trainer.log[-1]["elapsed_s"] if trainer.log else 0.0,
        "wall_time_s": wall_s,
        "final_losses": final_losses(trainer.log),
        "sample_grid": {"steps": grid.steps, "guidance": grid.guidance, "seed": grid.seed},
        "warnings": run.warnings,
    }


def _grid_settings(config: ErasureConfig, base: BaseModel) -> GridSettings:
    """The config's grid settings where given, else the model's own sampling defaults."""
    steps, guidance = config.grid_steps, config.grid_guidance
    return GridSettings(
        steps=base.sampling.steps if steps is None else steps,
        guidance=base.sampling.guidance if guidance is None else guidance,
        seed=config.seed,
        control_prompts=config.sample_prompts or DEFAULT_CONTROL_PROMPTS,
    )


def _progress(record: dict[str, Any], total: int) -> Progress:
    losses: dict[str, float] = {
        k: record[k] for k in ("erase", "preserve", "adversary", "loss") if k in record
    }
    drawn = record.get("adversarial_concept")
    return Progress(
        step=record["step"],
        total=total,
        losses=losses,
        adversarial_concepts={record["concept"]: drawn} if drawn else {},
        elapsed_s=record["elapsed_s"],
    )


def _start(
    out_dir: Path, run: PreparedRun, trainer: Trainer, resume: bool, hooks: Hooks, total: int
) -> int | None:
    """Continue from the newest complete checkpoint when asked to (returns its step); otherwise
    clear old checkpoints so pruning never keeps a previous run's newer one."""
    if not resume:
        shutil.rmtree(out_dir / CHECKPOINTS_DIR, ignore_errors=True)
        return None
    loaded = load_latest_checkpoint(out_dir, run.fingerprint, run.setup.device)
    if loaded is None:
        return None
    step, trained, state = loaded
    if step > total:
        raise CheckpointMismatchError(
            f"the newest checkpoint in {out_dir / CHECKPOINTS_DIR} is at update {step}, past the "
            f"{total} iterations asked: raise iterations to at least {step}, or start over"
        )
    run.setup.subset.load_state(trained)
    trainer.load_state_dict(state)
    if hooks.on_resume:
        hooks.on_resume(step)
    return step


def erase(
    config: ErasureConfig, out_dir: Path, hooks: Hooks | None = None, resume: bool = False
) -> ErasureResult:
    """Erase `config.concepts` from `config.model`; outputs go to `out_dir` once training ends."""
    hooks = hooks or Hooks()
    quiet_libraries()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    configure_device(device, config.allow_tf32)
    total = config.hyperparameters.iterations
    with translate_oom(device):
        base = load_base_model(config.model, device, config.cache_dir)
        run = prepare(config, base, device)
        if config.offload:  # every prompt training needs is embedded by now
            offload_parts(base)
        trainer = Trainer(run.setup, config.seed)
        resumed_from = _start(out_dir, run, trainer, resume, hooks, total)
        saved_at = [resumed_from]  # the step of the newest checkpoint on disk

        def checkpoint() -> None:
            folder = save_checkpoint(
                out_dir,
                trainer.step,
                run.setup.subset.state(),
                trainer.state_dict(),
                run.fingerprint,
                config.checkpoint_total_limit,
            )
            saved_at[0] = trainer.step
            if hooks.on_checkpoint:
                hooks.on_checkpoint(trainer.step, folder)

        def after_update(record: dict[str, Any]) -> None:
            if hooks.on_progress:
                hooks.on_progress(_progress(record, total))
            every = config.checkpoint_every
            if every and trainer.step % every == 0:
                checkpoint()

        completed = trainer.train(total, hooks.should_cancel or (lambda: False), after_update)
        if completed and config.checkpoint_every and saved_at[0] != trainer.step:
            # The end is always a checkpoint: a later run with more iterations continues from it,
            # and a crash while the outputs are written does not cost the last updates.
            checkpoint()
        result_losses = final_losses(trainer.log)
        if not completed:
            return ErasureResult(
                status="cancelled",
                steps_completed=trainer.step,
                total_steps=total,
                out_dir=out_dir,
                outputs=[],
                resumed_from=resumed_from,
                final_losses=result_losses,
                wall_time_s=time.perf_counter() - started,
                warnings=run.warnings,
            )
        grid = _grid_settings(config, base)
        restore_parts(base, device)
        manifest = _manifest(config, base, run, trainer, grid, time.perf_counter() - started)
        outputs = write_outputs(
            out_dir,
            pipeline=base.pipeline,
            subset=run.setup.subset,
            adversaries=run.setup.adversaries,
            concepts=run.setup.concepts,
            manifest=manifest,
            log=trainer.log,
            grid=grid,
        )
    return ErasureResult(
        status="succeeded",
        steps_completed=trainer.step,
        total_steps=total,
        out_dir=out_dir,
        outputs=outputs,
        resumed_from=resumed_from,
        final_losses=result_losses,
        wall_time_s=time.perf_counter() - started,
        warnings=run.warnings,
    )
