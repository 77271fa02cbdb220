"""Self-supervised wav2vec 2.0 pretraining on a project's unlabeled audio.

No wav2vec 2.0 weights ship in any registry package, so a project that wants that family starts
from its own recordings: random crops, masked spans, and the contrastive + codebook-diversity
objective of wav2vec 2.0 (transformers' Wav2Vec2ForPreTraining). The result is a standard
transformers directory that `asr.model.ctc_model_from_encoder(directory, vocabulary)` fine-tunes
like any wav2vec 2.0 checkpoint.

Recipe details follow transformers' run_wav2vec2_pretraining_no_trainer.py: the loss is divided
by the number of masked frames, the Gumbel temperature decays from 2 to 0.5, and the learning
rate warms up linearly then decays linearly.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    _compute_mask_indices,
    _sample_negative_indices,
)

from asr.audio import SAMPLE_RATE


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
    mask_prob: float = 0.5  # share of frames that start a masked span (spans overlap)
    mask_length: int = 10
    crop_seconds: float = 4.0
    batch_size: int = 8
    learning_rate: float = 5e-4
    warmup_steps: int = 50
    max_steps: int = 2000
    max_seconds: float = 600.0  # wall-clock budget; whichever of the two ends first
    gumbel_temperature: tuple[float, float, float] = (2.0, 0.5, 0.999)  # start, floor, decay/step
    seed: int = 0


@dataclass
class PretrainResult:
    model: Wav2Vec2ForPreTraining
    losses: list[float] = field(default_factory=list)  # per step, per masked frame
    seconds: float = 0.0


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
    progress: Callable[[int, float], None] | None = None,
) -> PretrainResult:
    """Pretrain on unlabeled 16 kHz recordings (n_i,) until max_steps or max_seconds.

    `progress(step, loss)` after each step. With `output_directory`, the model and its feature
    extractor are saved there for `ctc_model_from_encoder`."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = Wav2Vec2ForPreTraining(wav2vec2_config(config)).train()
    feature_extractor = pretraining_feature_extractor()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    crop_length = int(config.crop_seconds * SAMPLE_RATE)
    frames = int(model._get_feat_extract_output_lengths(crop_length))
    start, floor, decay = config.gumbel_temperature
    result = PretrainResult(model)
    started = time.monotonic()

    for step in range(config.max_steps):
        if time.monotonic() - started > config.max_seconds:
            break
        crops = random_crops(recordings, config.batch_size, crop_length, rng)
        inputs = feature_extractor(list(crops), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        shape = (config.batch_size, frames)
        mask = _compute_mask_indices(shape, config.mask_prob, config.mask_length, min_masks=2)
        negatives = _sample_negative_indices(shape, config.num_negatives, mask_time_indices=mask)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        model.set_gumbel_temperature(max(start * decay**step, floor))

        output = model(
            inputs["input_values"],
            attention_mask=inputs["attention_mask"],
            mask_time_indices=torch.from_numpy(mask),
            sampled_negative_indices=torch.from_numpy(negatives),
        )
        loss = output.loss / int(mask.sum())  # per masked frame, comparable across batches
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        result.losses.append(loss.item())
        if progress:
            progress(step + 1, result.losses[-1])

    result.seconds = time.monotonic() - started
    model.eval()
    if output_directory is not None:
        model.save_pretrained(output_directory)
        feature_extractor.save_pretrained(output_directory)
    return result


def _learning_rate(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    remaining = max(config.max_steps - config.warmup_steps, 1)
    return config.learning_rate * max(0.0, 1 - (step - config.warmup_steps) / remaining)
