"""The settings of a training round: one table of defaults, read by the app and the simulation.

No torch here: the web server builds a round's settings when it queues the round, and it never
loads torch. The round itself (asr/round.py) runs on a gpu worker or in `asr simulate`.

A round's settings are stored with the round (training.models.TrainingRound.config) as
`asdict(RoundConfig)`, so a resumed round trains exactly as it started, whatever the defaults
became meanwhile.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

BUILTIN_TINY = "builtin:tiny"
BUILTIN_WHISPER = "builtin:whisper-base"

BaseKind = Literal["whisper-base", "tiny", "saved", "encoder"]


def base_kind(spec: str) -> BaseKind:
    """What a base model spec names, read once for the app, the simulation and the CLI:
    the built-in Whisper-base encoder (a new CTC head on it), the tiny random model (tests),
    a saved CTC model directory (its own head and vocabulary: `vocab.json`), or a checkpoint
    whose encoder gets a new CTC head (a local directory, or a hub id with downloads on).
    ValueError for a built-in name that is none of ours."""
    if spec == BUILTIN_WHISPER:
        return "whisper-base"
    if spec == BUILTIN_TINY:
        return "tiny"
    if spec.startswith("builtin:"):
        raise ValueError(f"{spec}: the built-in bases are {BUILTIN_WHISPER} and {BUILTIN_TINY}")
    return "saved" if (Path(spec) / "vocab.json").is_file() else "encoder"


@dataclass(frozen=True)
class RoundConfig:
    max_steps: int = 400  # optimizer steps; early stopping may end sooner
    batch_size: int = 8
    learning_rate: float = 1e-4  # peak, after the warm-up
    warmup_steps: int | None = None  # None: a tenth of max_steps
    eval_every: int | None = None  # dev evaluations (and checkpoints); None: a tenth of max_steps
    # Evaluations without a better dev CER before stopping; 0: never. Never, by default: a
    # round from the promoted model is first thrown off by the warmed-up learning rate, and
    # stopping after 4 evaluations ended it with nothing, where all its steps gave the best
    # dev CER of every round (docs/benchmarks.md, "Wasted rounds from the promoted model").
    patience: int = 0
    seed: int = 0
    # The lexicon + word n-gram LM built next to the model (asr.lm); 0: none.
    lm_order: int = 3
    # A round has collapsed when its best dev CER is still at or above `collapse_dev_cer` at
    # an evaluation past `collapse_check_fraction` of its steps (the CTC blank plateau writes
    # nothing: CER 1.0), or when its loss stops being finite. It is then trained again, up to
    # `recovery_attempts` times: from the promoted model where the round started elsewhere,
    # else from the start with another seed; each retry at a third of the learning rate.
    collapse_dev_cer: float = 0.9
    collapse_check_fraction: float = 0.4
    recovery_attempts: int = 2
    # Self-training: the unlabeled pool's drafts (by the model that scored it) train too,
    # where the draft's confidence reaches the threshold chosen on dev: the lowest at which
    # the dev clips as confident had at most `pseudo_max_dev_cer` CER. Each pseudo-labeled
    # clip's loss counts `pseudo_weight` of a labeled one's, its encoder outputs are masked
    # (noisy student), and at most `pseudo_max_ratio` x the labeled minutes are taken. Weight
    # and ratio were chosen on the demo corpus's dev set: 0.3 and 1x against 0.5 and 3x gave
    # dev CER 12.6% / 10.8% against 15.7% / 13.0% at 20 / 30 minutes (docs/benchmarks.md).
    self_train: bool = False
    pseudo_max_dev_cer: float = 0.05
    pseudo_weight: float = 0.3
    pseudo_max_ratio: float = 1.0
    pseudo_mask_prob: float = 0.1  # share of encoder frames masked on pseudo-labeled clips
    # The pseudo-label is the greedy draft rather than the one annotators see (LM-decoded
    # where the version kept its LM): the LM's forced words may not be what the audio says.
    pseudo_from_greedy: bool = False
    # A Whisper-based round may also train the encoder's top layers, at a tenth of the
    # learning rate (bf16 autocast on CUDA, as all CUDA training). The layers below stay
    # frozen and cached, so each step reruns only the top ones: on the CPU a step with the
    # top layer training takes about 2.6x one of the head alone (docs/benchmarks.md).
    unfreeze_top_layers: int = 0
    encoder_learning_rate_factor: float = 0.1

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("max_steps, batch_size and learning_rate must be positive")
        if self.lm_order == 1 or self.lm_order < 0:
            raise ValueError("the LM's order is 0 (none) or at least 2")

    @property
    def resolved_warmup_steps(self) -> int:
        return self.max_steps // 10 if self.warmup_steps is None else self.warmup_steps

    @property
    def resolved_eval_every(self) -> int:
        return max(self.max_steps // 10, 1) if self.eval_every is None else self.eval_every

    @property
    def collapse_check_step(self) -> int:
        return round(self.collapse_check_fraction * self.max_steps)


# Per base, measured on the demo corpus (docs/base-models.md, docs/benchmarks.md): a fresh CTC
# head on a frozen encoder wants a high learning rate, a whole wav2vec 2.0 fine-tune a low one.
# `steps_per_minute`: more labels, more steps (1500 at 60 labeled minutes cut test CER from
# 6.4% to 4.8% on the demo corpus); a round trains max(max_steps, it x training minutes).
ROUND_DEFAULTS = {
    BUILTIN_WHISPER: {
        "max_steps": 500,
        "steps_per_minute": 25,
        "batch_size": 6,
        "learning_rate": 3e-3,
    },
    # A randomly initialized wav2vec 2.0 learns from the labels alone: on a few minutes its dev
    # CER stays near 100% for hundreds of steps, which is not a collapse to retry.
    BUILTIN_TINY: {
        "max_steps": 400,
        "batch_size": 8,
        "learning_rate": 1e-4,
        "recovery_attempts": 0,
    },
    "": {"max_steps": 400, "batch_size": 8, "learning_rate": 1e-4},
}


def round_config(base: str, train_minutes: float = 0.0, overrides: dict | None = None) -> dict:
    """A round's settings as stored with it: the base's defaults, the operator's `overrides`
    (any RoundConfig field, or steps_per_minute) on top. A given max_steps stands as is; else
    the round trains longer as the labels grow."""
    overrides = dict(overrides or {})
    values = {**ROUND_DEFAULTS.get(base, ROUND_DEFAULTS[""]), **overrides}
    per_minute = values.pop("steps_per_minute", 0)
    if "max_steps" not in overrides:
        values["max_steps"] = max(values["max_steps"], round(per_minute * train_minutes))
    kinds = {field.name: field.type for field in fields(RoundConfig)}
    unknown = set(values) - set(kinds)
    if unknown:
        raise ValueError(f"unknown round settings: {', '.join(sorted(unknown))}")
    for name, value in values.items():
        values[name] = _typed(name, kinds[name], value)
    return asdict(RoundConfig(**values))


def _typed(name: str, kind, value):
    """`value` as the field's type: 25 and 25.0 are one float setting (in JSON too); a string
    where a number belongs, or a number for a switch, is refused with the field's name."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (int, int | None) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == int | None and value is None:
        return value
    raise ValueError(f"{name} must be {getattr(kind, '__name__', kind)}, not {value!r}")


def round_config_from_stored(stored: dict) -> RoundConfig:
    """A round's stored settings back as a RoundConfig; rounds queued before a setting existed
    get its default."""
    known = {field.name for field in fields(RoundConfig)}
    return RoundConfig(**{name: value for name, value in stored.items() if name in known})
