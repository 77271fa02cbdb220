"""Fine-tune a CTC model on labeled clips: one visible loop, seeded, resumable.

The recipe is transformers' CTC fine-tuning recipe (run_speech_recognition_ctc.py) written
out as a loop in the style of nanoGPT's train.py: CTC loss with zero_infinity, AdamW, linear
warm-up then linear decay, the convolutional feature encoder frozen, SpecAugment time and
feature masking (the model's own `mask_time_prob`...), gradient accumulation and clipping,
autocast on CUDA, early stopping on dev CER.

A run writes into its output directory:
    model/          the best model so far (by dev CER), a standard transformers directory
    checkpoint.pt   a plain dict: weights, optimizer, step, RNG states, history
A run started again on the same directory resumes from checkpoint.pt and ends with the same
weights as a run that was never interrupted: the batch order is a function of (seed, step),
the learning rate a function of the step, and the RNG states (dropout, layer drop, masking)
are saved with the weights.
"""

import collections
import hashlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from asr.audio import SAMPLE_RATE
from asr.checkpoint import save_ctc_model
from asr.evaluate import evaluate_model
from asr.model import CtcModel, InferenceConfig, pick_device

LabeledClip = tuple[np.ndarray, str]  # (samples (n,) float32 at 16 kHz, normalized text)


class TrainingCancelled(Exception):
    """The cancellation check said stop. A checkpoint was written; run again to resume."""

    def __init__(self, step: int, checkpoint_path: Path) -> None:
        super().__init__(f"cancelled at step {step}; resume from {checkpoint_path}")
        self.step = step
        self.checkpoint_path = checkpoint_path


@dataclass(frozen=True)
class FinetuneConfig:
    max_steps: int = 2000  # optimizer steps
    batch_size: int = 8  # clips per forward pass
    gradient_accumulation_steps: int = 1  # forward passes per optimizer step
    learning_rate: float = 1e-4  # peak, reached after warm-up
    warmup_steps: int = 200
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    freeze_feature_encoder: bool = True  # the conv stack is generic; 1-2 h of labels overfit it
    # SpecAugment, applied by the model itself in training mode (wav2vec2, HuBERT, WavLM...)
    mask_time_prob: float = 0.05
    mask_time_length: int = 10  # frames of 20 ms
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10  # hidden channels
    eval_every: int = 100  # steps between dev evaluations (and checkpoints)
    patience: int = 5  # stop after this many evaluations without a better dev CER; 0 = never
    max_clip_seconds: float = 20.0  # longer training clips are skipped: memory, rarely useful
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on CUDA
    eval_batch_seconds: float = 160.0  # padded audio per dev-inference batch
    # A run that collapsed stops: its best dev CER still at or above collapse_dev_cer at an
    # evaluation from collapse_check_step on (0: never checked), or a loss that stays
    # non-finite. FinetuneResult.collapsed says which; asr.round decides what to do.
    collapse_dev_cer: float = 0.0
    collapse_check_step: int = 0
    # Pseudo-labeled clips (finetune's `pseudo`): their loss weight against a labeled clip's,
    # and the share of encoder frames masked on them where the network can (noisy student).
    pseudo_weight: float = 1.0
    pseudo_mask_prob: float = 0.0
    # Parameters of a pretrained encoder (names starting "encoder.") that train, e.g. Whisper's
    # unfrozen top layers, learn at this share of the learning rate: the head starts from
    # nothing, the encoder from what it knows.
    encoder_learning_rate_factor: float = 1.0

    def __post_init__(self) -> None:
        counts = (self.max_steps, self.batch_size, self.gradient_accumulation_steps)
        if min(counts) < 1 or self.eval_every < 1:
            raise ValueError("max_steps, batch_size, accumulation and eval_every must be >= 1")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision is auto, fp32, bf16 or fp16, not {self.precision!r}")


@dataclass(frozen=True)
class Progress:
    phase: Literal["evaluate", "train"]
    step: int  # optimizer steps done
    total: int  # config.max_steps; early stopping may end sooner
    loss: float | None  # this step's mean CTC loss; None while evaluating
    eta_seconds: float | None  # at this run's pace; None until a step has been timed


@dataclass
class FinetuneResult:
    model_dir: Path  # the best model, a transformers directory
    steps: int  # optimizer steps done
    best_step: int  # 0 = the starting model was never beaten
    best_dev_cer: float
    initial_dev_cer: float
    train_losses: list[float]  # mean CTC loss of each optimizer step
    dev_history: list[tuple[int, float, float]]  # (step, dev WER, dev CER) per evaluation
    seconds: float  # training time over all sessions of this run
    stopped_early: bool
    skipped_clips: int  # training clips left out: too long, or text too long for the audio
    collapsed: str = ""  # why the run stopped as collapsed; "" when it did not
    pseudo_clips: int = 0  # pseudo-labeled clips that trained (of `pseudo`)


@dataclass
class _History:
    """What a resumed run must remember besides weights and optimizer."""

    train_losses: list[float] = field(default_factory=list)
    dev_history: list[tuple[int, float, float]] = field(default_factory=list)
    best_dev_cer: float = math.inf
    best_step: int = 0
    evaluations_since_best: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    collapsed: str = ""
    non_finite_steps: int = 0  # in a row


ETA_WINDOW = 20  # steps the pace is taken from


def eta_seconds(
    recent_step_seconds: Sequence[float],
    remaining_steps: int,
    evaluation_seconds: float,
    remaining_evaluations: int,
) -> float | None:
    """Time left at the recent pace: the median of the latest steps (the first steps of a
    round are slow while the encoder outputs are computed and cached, and an average since
    the start stays inflated long after), plus the dev evaluations still to come."""
    if not recent_step_seconds:
        return None
    pace = float(np.median(recent_step_seconds))
    return pace * remaining_steps + evaluation_seconds * remaining_evaluations


def finetune(
    model: CtcModel,
    train: Sequence[LabeledClip],
    dev: Sequence[LabeledClip],
    output_dir: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    pseudo: Sequence[LabeledClip] = (),
) -> FinetuneResult:
    """Train `model` in place on `train` (and `pseudo`, pseudo-labeled clips weighted by
    config.pseudo_weight), keep the version with the best CER on `dev`.

    Resumes from output_dir/checkpoint.pt when it exists (same config and data required).
    `should_cancel` is asked after every step; True saves a checkpoint and raises
    TrainingCancelled. With an empty dev set the last step's model is kept.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = output_dir / "checkpoint.pt"
    model_dir = output_dir / "model"
    device = torch.device(pick_device(config.device))
    autocast_dtype = _autocast_dtype(config.precision, device)
    network = model.network.to(device)
    _prepare_network(network, config)

    clips, labels, skipped = _trainable(train, model, config)
    if not clips:
        raise ValueError("no training clip is usable (empty, too long, or text too long)")
    pseudo_clips, pseudo_labels, _ = _trainable(pseudo, model, config)
    first_pseudo = len(clips)  # clips from here on are pseudo-labeled
    weights = [1.0] * len(clips) + [config.pseudo_weight] * len(pseudo_clips)
    clips, labels = clips + pseudo_clips, labels + pseudo_labels
    dev_clips = [samples for samples, _ in dev]
    dev_texts = [text for _, text in dev]
    fingerprint = _data_fingerprint(clips, labels, dev_texts, weights)
    batches_per_epoch = len(_epoch_batches([len(c) for c in clips], config.batch_size, 0, 0))

    trainable = [(name, p) for name, p in network.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for name, p in trainable if name.startswith("encoder.") == encoder],
         "lr_factor": config.encoder_learning_rate_factor if encoder else 1.0}
        for encoder in (False, True)
    ]  # fmt: skip
    optimizer = torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    # fp16 needs loss scaling against underflowing gradients; bf16 and fp32 do not
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)

    def estimate_dev_cer(step: int) -> None:
        """Evaluate on dev; save the model if it is the best yet, else count toward patience."""
        if progress:
            progress(Progress("evaluate", step, config.max_steps, None, None))
        if dev_clips:
            inference = InferenceConfig(config.eval_batch_seconds, device=str(device))
            evaluation = evaluate_model(model, dev_clips, dev_texts, inference_config=inference)
            wer, cer = evaluation.wer, evaluation.cer
        else:
            wer, cer = math.nan, -float(step)  # no dev set: the latest model is the best
        network.train()
        history.dev_history.append((step, wer, cer if dev_clips else math.nan))
        if cer < history.best_dev_cer:
            history.best_dev_cer, history.best_step = cer, step
            history.evaluations_since_best = 0
            _save_model_atomically(model, model_dir)
        else:
            history.evaluations_since_best += 1
            if config.patience and history.evaluations_since_best >= config.patience:
                history.stopped_early = True
        plateau = config.collapse_dev_cer and history.best_dev_cer >= config.collapse_dev_cer
        checked = step >= config.collapse_check_step or history.stopped_early  # or no later
        if dev_clips and plateau and step > 0 and checked:
            history.collapsed = (
                f"stuck: best dev CER {history.best_dev_cer:.2f} at step {step}, not below "
                f"{config.collapse_dev_cer:.2f} (a head at the CTC blank plateau writes nothing: "
                "1.00)"
            )
            history.stopped_early = True

    def save_checkpoint(step: int) -> None:
        save_atomically(
            {
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "rng": rng_states(),
                "history": asdict(history),
                "config": asdict(config),
                "data": fingerprint,
            },
            checkpoint_path,
        )

    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if checkpoint["config"] != asdict(config) or checkpoint["data"] != fingerprint:
            raise ValueError(
                f"{checkpoint_path} belongs to a run with other settings or data; "
                "delete it or use another output directory"
            )
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        step = checkpoint["step"]
        history = _History(**checkpoint["history"])
        history.dev_history = [tuple(entry) for entry in history.dev_history]
        restore_rng_states(checkpoint["rng"])
    else:
        seed_everything(config.seed)
        step, history = 0, _History()
        estimate_dev_cer(step)  # the starting point: a round must beat it to count
        save_checkpoint(step)

    session_start = time.monotonic()
    seconds_before = history.seconds  # earlier sessions of this run
    recent_steps: collections.deque[float] = collections.deque(maxlen=ETA_WINDOW)
    last_evaluation = 0.0
    while step < config.max_steps and not history.stopped_early:
        step_start = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(step, config) * group["lr_factor"]
        network.train()
        step_loss = 0.0
        for micro_step in range(config.gradient_accumulation_steps):
            micro_batch = step * config.gradient_accumulation_steps + micro_step
            epoch, position = divmod(micro_batch, batches_per_epoch)
            indices = _epoch_batches([len(c) for c in clips], config.batch_size, config.seed, epoch)
            batch = get_batch(
                model, clips, labels, indices[position], device, weights, first_pseudo
            )
            with torch.autocast(device.type, autocast_dtype, enabled=autocast_dtype is not None):
                loss = ctc_loss(network, batch, model.vocabulary.pad_id, config.pseudo_mask_prob)
            loss = loss / config.gradient_accumulation_steps  # the mean over micro-batches
            scaler.scale(loss).backward()
            step_loss += loss.item()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        history.train_losses.append(step_loss)
        history.non_finite_steps = 0 if math.isfinite(step_loss) else history.non_finite_steps + 1
        if history.non_finite_steps >= NON_FINITE_STEPS_TO_STOP:
            history.collapsed = f"diverged: the loss was not finite from step {step - 2} on"
            history.stopped_early = True

        history.seconds = seconds_before + time.monotonic() - session_start
        recent_steps.append(time.monotonic() - step_start)
        if progress:
            remaining = config.max_steps - step
            eta = eta_seconds(
                list(recent_steps), remaining, last_evaluation, remaining // config.eval_every
            )
            progress(Progress("train", step, config.max_steps, step_loss, eta))
        if step % config.eval_every == 0 or step == config.max_steps:
            evaluation_start = time.monotonic()
            estimate_dev_cer(step)
            last_evaluation = time.monotonic() - evaluation_start
            history.seconds = seconds_before + time.monotonic() - session_start
            save_checkpoint(step)
        elif history.collapsed:  # diverged between evaluations: a resume must see it so
            save_checkpoint(step)
        if should_cancel and should_cancel():
            save_checkpoint(step)
            raise TrainingCancelled(step, checkpoint_path)

    return FinetuneResult(
        model_dir=model_dir,
        steps=step,
        best_step=history.best_step,
        best_dev_cer=history.best_dev_cer if dev_clips else math.nan,
        initial_dev_cer=history.dev_history[0][2],
        train_losses=history.train_losses,
        dev_history=history.dev_history,
        seconds=history.seconds,
        stopped_early=history.stopped_early,
        skipped_clips=skipped,
        collapsed=history.collapsed,
        pseudo_clips=len(pseudo_clips),
    )


# fp16 loss scaling skips a step whose gradients overflow; three in a row is no overflow
NON_FINITE_STEPS_TO_STOP = 3


# --- the helpers the loop calls ---------------------------------------------------------------


def get_lr(step: int, config: FinetuneConfig) -> float:
    """Linear warm-up to config.learning_rate over warmup_steps, then linear decay to 0."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / (config.warmup_steps + 1)
    remaining = config.max_steps - step
    return config.learning_rate * remaining / max(config.max_steps - config.warmup_steps, 1)


@dataclass(frozen=True)
class Batch:
    input_values: torch.Tensor  # (B, n_max) normalized, zero-padded samples
    attention_mask: torch.Tensor | None  # (B, n_max); None for group-norm encoders
    sample_lengths: torch.Tensor  # (B,)
    targets: torch.Tensor  # (sum of label lengths,) token ids, concatenated
    target_lengths: torch.Tensor  # (B,)
    weights: torch.Tensor | None = None  # (B,) loss weight per clip; None: all 1
    pseudo: torch.Tensor | None = None  # (B,) true for pseudo-labeled clips; None: none


def get_batch(
    model: CtcModel,
    clips: Sequence[np.ndarray],
    labels: Sequence[list[int]],
    indices: Sequence[int],
    device: torch.device,
    weights: Sequence[float] | None = None,
    first_pseudo: int | None = None,
) -> Batch:
    features = model.feature_extractor(
        [clips[i] for i in indices],
        sampling_rate=SAMPLE_RATE,
        padding="longest",
        return_tensors="pt",
    )
    attention_mask = features.get("attention_mask")
    return Batch(
        input_values=features["input_values"].to(device),
        attention_mask=None if attention_mask is None else attention_mask.to(device),
        sample_lengths=torch.tensor([len(clips[i]) for i in indices], device=device),
        targets=torch.tensor([t for i in indices for t in labels[i]], device=device),
        target_lengths=torch.tensor([len(labels[i]) for i in indices], device=device),
        weights=None
        if weights is None
        else torch.tensor([weights[i] for i in indices], device=device),
        pseudo=None
        if first_pseudo is None
        else torch.tensor([i >= first_pseudo for i in indices], device=device),
    )


def ctc_loss(
    network: torch.nn.Module, batch: Batch, blank_id: int, mask_prob: float = 0.0
) -> torch.Tensor:
    """Mean CTC loss of the batch (each clip's loss divided by its label length, as in
    transformers), each clip's times its weight. zero_infinity: a clip its labels cannot fit
    gives 0, not inf and NaN. Pseudo-labeled clips get `mask_prob` of their encoder frames
    masked where the network takes `noisy_rows` (asr.whisper)."""
    extra = {}
    if mask_prob > 0 and batch.pseudo is not None and getattr(network, "takes_noisy_rows", False):
        extra = {"noisy_rows": batch.pseudo, "mask_prob": mask_prob}
    logits = network(batch.input_values, attention_mask=batch.attention_mask, **extra).logits
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
    frame_lengths = network._get_feat_extract_output_lengths(batch.sample_lengths)  # (B,)
    losses = F.ctc_loss(
        log_probs,
        batch.targets,
        frame_lengths,
        batch.target_lengths,
        blank=blank_id,
        reduction="none",
        zero_infinity=True,
    ) / batch.target_lengths.clamp(min=1)  # (B,)
    if batch.weights is not None:
        losses = losses * batch.weights
    return losses.mean()


# --- setup ------------------------------------------------------------------------------------


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None  # CPU autocast is not faster on the 2-core machines this runs on
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _prepare_network(network: torch.nn.Module, config: FinetuneConfig) -> None:
    if config.freeze_feature_encoder and hasattr(network, "freeze_feature_encoder"):
        network.freeze_feature_encoder()
    # SpecAugment lives in the model (wav2vec2 family) and reads its config at each forward
    network_config = getattr(network, "config", None)  # asr.whisper's network has none
    for name in ("mask_time_prob", "mask_time_length", "mask_feature_prob", "mask_feature_length"):
        if hasattr(network_config, name):
            setattr(network_config, name, getattr(config, name))


def _trainable(
    train: Sequence[LabeledClip], model: CtcModel, config: FinetuneConfig
) -> tuple[list[np.ndarray], list[list[int]], int]:
    """Clips and token ids that can train: not too long, some text, and at least as many
    frames as CTC needs (one per token, plus a blank between repeats), and enough frames for
    one SpecAugment span."""
    network = model.network
    clips, labels = [], []
    for samples, text in train:
        label = model.vocabulary.encode(text)
        frames = int(network._get_feat_extract_output_lengths(torch.tensor(len(samples))))
        repeats = sum(a == b for a, b in zip(label, label[1:], strict=False))
        if (
            label
            and len(samples) <= config.max_clip_seconds * SAMPLE_RATE
            and frames >= len(label) + repeats
            and frames >= config.mask_time_length
        ):
            clips.append(np.asarray(samples, np.float32))
            labels.append(label)
    return clips, labels, len(train) - len(clips)


def _epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """This epoch's batches of clip indices: a shuffle, then sorting within windows of 8
    batches so each batch holds clips of similar length (less padding), batches shuffled.

    A pure function of (lengths, seed, epoch): a resumed run sees the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    window = batch_size * 8
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _data_fingerprint(
    clips: Sequence[np.ndarray],
    labels: Sequence[list[int]],
    dev_texts: Sequence[str],
    weights: Sequence[float],
) -> str:
    digest = hashlib.sha256()
    for samples, label, weight in zip(clips, labels, weights, strict=True):
        # the weight only where it is not 1: a run without pseudo-labels keeps its fingerprint
        digest.update(f"{len(samples)}:{label}{'' if weight == 1 else f':{weight}'}\n".encode())
    digest.update("\n".join(dev_texts).encode())
    return digest.hexdigest()


# --- checkpoints and randomness ---------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # transformers draws SpecAugment masks from numpy's global generator
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_states() -> dict:
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.copy()), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    random.setstate(_as_tuples(states["python"]))
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    # keys.cpu(): a checkpoint loaded with map_location="cuda" put this array on the GPU too
    np.random.set_state((name, keys.cpu().numpy(), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


def _as_tuples(value):
    # random.setstate wants the tuples it gave; a checkpoint may hand lists back
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def save_atomically(checkpoint: dict, path: Path) -> None:
    """A kill while writing leaves the previous checkpoint whole."""
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


def _save_model_atomically(model: CtcModel, directory: Path) -> None:
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_ctc_model(model, partial)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(partial, directory)
