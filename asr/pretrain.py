"""Self-supervised wav2vec 2.0 pretraining on a project's unlabeled audio: seeded, resumable.

No wav2vec 2.0 weights ship in any registry package, so a project that wants that family starts
from its own recordings: random crops, masked spans, and the contrastive + codebook-diversity
objective of wav2vec 2.0 (transformers' Wav2Vec2ForPreTraining). The result is a standard
transformers directory that `asr.model.ctc_model_from_encoder(directory, vocabulary)` fine-tunes
like any wav2vec 2.0 checkpoint.

Recipe details follow transformers' run_wav2vec2_pretraining_no_trainer.py: the loss is divided
by the number of masked frames, the Gumbel temperature decays from 2 to 0.5, and the learning
rate warms up linearly then decays linearly.

A run with an output directory writes there:
    checkpoint.pt   a plain dict: weights, optimizer, step, losses, seconds, RNG states, settings
    model.safetensors, config.json, preprocessor_config.json   the model, when the run ends
checkpoint.pt is written every `checkpoint_every` steps, when the run ends and when it is
cancelled. A call on the same directory resumes from it and gives the same losses as a run that
was never interrupted: crops are a function of (seed, step), the learning rate and temperature
functions of the step, and the RNG states (masks, negatives, dropout, Gumbel noise) are saved.
"""

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    _compute_mask_indices,
    _sample_negative_indices,
)

from asr.audio import SAMPLE_RATE

# the checkpoint helpers of fine-tuning: transformers draws masks, negatives and layer drop
# from numpy's global generator, so both loops save the same set of RNG states
from asr.finetune import restore_rng_states, rng_states, save_atomically, seed_everything
from asr.model import pick_device

# When a run stops, how often it saves and where it runs may change when it is resumed (max_steps
# also moves the rest of the learning-rate schedule); everything else changes the numbers, so a
# checkpoint of other settings is refused.
MAY_CHANGE_ON_RESUME = ("max_steps", "max_seconds", "checkpoint_every", "device")


class PretrainingCancelled(Exception):
    """should_cancel said stop. With an output directory a checkpoint was written: call again."""

    def __init__(self, step: int, checkpoint_path: Path | None) -> None:
        where = f"resume from {checkpoint_path}" if checkpoint_path else "nothing was saved"
        super().__init__(f"cancelled at step {step}; {where}")
        self.step = step
        self.checkpoint_path = checkpoint_path


@dataclass(frozen=True)
class PretrainConfig:
    """A wav2vec 2.0 small enough to pretrain on CPU minutes, and how to train it."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    conv_channels: int = 256  # the 7 conv layers (strides 5,2,2,2,2,2,2: 50 frames/s)
    num_codevector_groups: int = 2
    num_codevectors_per_group: int = 160
    codevector_dim: int = 128
    num_negatives: int = 50
    diversity_loss_weight: float = 0.1  # against codebook collapse (see PretrainResult)
    mask_prob: float = 0.5  # share of frames that start a masked span (spans overlap)
    mask_length: int = 10
    crop_seconds: float = 4.0
    batch_size: int = 8
    learning_rate: float = 5e-4
    warmup_steps: int = 50
    max_steps: int = 2000  # the learning rate decays to 0 here
    max_seconds: float = 600.0  # wall-clock budget over all sessions; whichever ends first
    gumbel_temperature: tuple[float, float, float] = (2.0, 0.5, 0.999)  # start, floor, decay/step
    seed: int = 0
    checkpoint_every: int = 50  # steps; a kill loses at most this many
    device: str = "auto"  # "auto" = CUDA when available, else CPU

    def __post_init__(self) -> None:
        if min(self.max_steps, self.batch_size, self.checkpoint_every) < 1:
            raise ValueError("max_steps, batch_size and checkpoint_every must be >= 1")


@dataclass(frozen=True)
class PretrainProgress:
    step: int  # steps done, over all sessions
    total: int  # config.max_steps; the time budget may end sooner
    loss: float  # this step's loss per masked frame
    perplexity: float  # this step's codevector perplexity (PretrainResult says why it matters)
    eta_seconds: float  # at this session's pace, capped by what is left of max_seconds


@dataclass
class PretrainResult:
    """Per step, over all sessions of the run. Losses are per masked frame."""

    model: Wav2Vec2ForPreTraining
    losses: list[float] = field(default_factory=list)  # what is minimized: contrastive + diversity
    contrastive_losses: list[float] = field(default_factory=list)  # chance: log(1 + negatives)
    # codevector perplexity of the batch, out of groups x codevectors per group. It drops when
    # the codebook collapses, which also lowers the contrastive loss without anything learned:
    # negatives equal to their positive are left out of the softmax.
    perplexities: list[float] = field(default_factory=list)
    seconds: float = 0.0  # training time


def wav2vec2_config(config: PretrainConfig) -> Wav2Vec2Config:
    return Wav2Vec2Config(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        conv_dim=(config.conv_channels,) * 7,
        feat_extract_norm="layer",  # as XLS-R: works with padding masks and small batches
        do_stable_layer_norm=True,
        num_codevector_groups=config.num_codevector_groups,
        num_codevectors_per_group=config.num_codevectors_per_group,
        codevector_dim=config.codevector_dim,
        proj_codevector_dim=config.codevector_dim,
        num_negatives=config.num_negatives,
        diversity_loss_weight=config.diversity_loss_weight,
        mask_time_prob=config.mask_prob,
        mask_time_length=config.mask_length,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
    )


def pretraining_feature_extractor() -> Wav2Vec2FeatureExtractor:
    """Zero-mean unit-variance per clip, with the attention mask: what fine-tuning will use."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def random_crops(
    recordings: Sequence[np.ndarray], count: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` crops of `length` samples, (count, length), from recordings picked in proportion to
    their length (shorter recordings are zero-padded)."""
    lengths = np.array([len(recording) for recording in recordings], float)
    crops = np.zeros((count, length), np.float32)
    for row, index in enumerate(rng.choice(len(recordings), size=count, p=lengths / lengths.sum())):
        recording = recordings[index]
        start = int(rng.integers(0, max(len(recording) - length, 0) + 1))
        piece = recording[start : start + length]
        crops[row, : len(piece)] = piece
    return crops


def pretrain_wav2vec2(
    recordings: Sequence[np.ndarray],
    config: PretrainConfig = PretrainConfig(),
    output_directory: str | Path | None = None,
    *,
    progress: Callable[[PretrainProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> PretrainResult:
    """Pretrain on unlabeled 16 kHz recordings (n_i,) until max_steps or max_seconds.

    With `output_directory`, resumes from its checkpoint.pt when there is one (same settings
    and recordings required, except MAY_CHANGE_ON_RESUME) and saves the model and its feature
    extractor there at the end, for `ctc_model_from_encoder`. `progress` is called after each
    step; `should_cancel` is asked after each step, and True saves a checkpoint and raises
    PretrainingCancelled.
    """
    directory = None if output_directory is None else Path(output_directory)
    checkpoint_path = None if directory is None else directory / "checkpoint.pt"
    device = torch.device(pick_device(config.device))
    settings = _run_settings(config, recordings)
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    seed_everything(config.seed)
    model = Wav2Vec2ForPreTraining(wav2vec2_config(config)).to(device).train()
    feature_extractor = pretraining_feature_extractor()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    crop_length = int(config.crop_seconds * SAMPLE_RATE)
    frames = int(model._get_feat_extract_output_lengths(crop_length))
    start, floor, decay = config.gumbel_temperature
    step, seconds_before = 0, 0.0
    result = PretrainResult(model)

    if checkpoint_path is not None and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if checkpoint["settings_hash"] != settings_hash:
            raise ValueError(_settings_differ(checkpoint_path, settings, checkpoint["settings"]))
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, seconds_before = checkpoint["step"], checkpoint["seconds"]
        for name in ("losses", "contrastive_losses", "perplexities"):
            setattr(result, name, checkpoint[name])
        restore_rng_states(checkpoint["rng"])

    session_start, session_start_step = time.monotonic(), step

    def seconds() -> float:
        return seconds_before + time.monotonic() - session_start

    def save_checkpoint() -> None:
        if checkpoint_path is None:
            return
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "seconds": seconds(),
                "losses": result.losses,
                "contrastive_losses": result.contrastive_losses,
                "perplexities": result.perplexities,
                "rng": rng_states(),
                "settings": settings,
                "settings_hash": settings_hash,
            },
            checkpoint_path,
        )

    while step < config.max_steps and seconds() < config.max_seconds:
        # a pure function of (seed, step): a resumed run draws the same crops
        crop_rng = np.random.default_rng([config.seed, step])
        crops = random_crops(recordings, config.batch_size, crop_length, crop_rng)  # (B, n)
        inputs = feature_extractor(list(crops), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        shape = (config.batch_size, frames)
        mask = _compute_mask_indices(shape, config.mask_prob, config.mask_length, min_masks=2)
        negatives = _sample_negative_indices(shape, config.num_negatives, mask_time_indices=mask)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        model.set_gumbel_temperature(max(start * decay**step, floor))

        output = model(
            inputs["input_values"].to(device),
            attention_mask=inputs["attention_mask"].to(device),
            mask_time_indices=torch.from_numpy(mask).to(device),  # (B, frames) bool
            sampled_negative_indices=torch.from_numpy(negatives).to(device),  # (B, frames, K)
        )
        masked_frames = int(mask.sum())
        loss = output.loss / masked_frames  # per masked frame, comparable across batches
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        result.losses.append(loss.item())
        result.contrastive_losses.append(output.contrastive_loss.item() / masked_frames)
        result.perplexities.append(output.codevector_perplexity.item())

        if progress:
            pace = (time.monotonic() - session_start) / (step - session_start_step)
            eta = min(pace * (config.max_steps - step), max(config.max_seconds - seconds(), 0.0))
            report = PretrainProgress(
                step, config.max_steps, result.losses[-1], result.perplexities[-1], eta
            )
            progress(report)
        if step % config.checkpoint_every == 0:
            save_checkpoint()
        if should_cancel and should_cancel():
            save_checkpoint()
            raise PretrainingCancelled(step, checkpoint_path)

    model.eval()
    result.seconds = seconds()
    if directory is not None:
        save_checkpoint()
        model.save_pretrained(directory)
        feature_extractor.save_pretrained(directory)
    return result


def _learning_rate(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    remaining = max(config.max_steps - config.warmup_steps, 1)
    return config.learning_rate * max(0.0, 1 - (step - config.warmup_steps) / remaining)


def _run_settings(config: PretrainConfig, recordings: Sequence[np.ndarray]) -> dict:
    """What must be the same for a checkpoint to be resumed: the config but for
    MAY_CHANGE_ON_RESUME, and the recordings (their lengths in order: cheap, and what the crops
    depend on besides the samples)."""
    settings = {k: v for k, v in asdict(config).items() if k not in MAY_CHANGE_ON_RESUME}
    lengths = ",".join(str(len(recording)) for recording in recordings)
    total_seconds = sum(len(recording) for recording in recordings) / SAMPLE_RATE
    settings["recordings"] = (
        f"{len(recordings)} recordings of {total_seconds:.1f} s "
        f"(lengths {hashlib.sha256(lengths.encode()).hexdigest()[:12]})"
    )
    return settings


def _settings_differ(path: Path, settings: dict, old: dict) -> str:
    changed = [
        f"{name} {settings.get(name)!r} here, {old.get(name)!r} there"
        for name in sorted(set(settings) | set(old))
        if settings.get(name) != old.get(name)
    ]
    return (
        f"{path} belongs to a run with other settings ({'; '.join(changed)}): "
        "use the same settings, another output directory, or delete it to start over"
    )
