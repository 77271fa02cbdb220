"""One training round, the recipe that a project's round (training/worker/trainer.py) and `asr
simulate` both run:

    1. self-training (config.self_train): the pool's drafts by the promoted model, the ones
       whose confidence reaches a threshold chosen on dev, train beside the labels
    2. fine-tune (asr.finetune) from the promoted model or a fresh head; a collapsed run (stuck
       at the CTC blank plateau, or a loss that is not finite) is trained again: from the
       promoted model where it started elsewhere, else with another seed, at a lower rate
    3. dev and test scores of the best model, greedy
    4. the language model: one from the training transcripts and one that also reads the
       pool's drafts compete on dev (choose_language_model); the test is decoded with the pick
    5. promotion: it must beat the promoted model on dev (on test without a dev set)

Arrays, models and paths in, a RoundResult out: no database, no settings.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from asr.audio import SAMPLE_RATE
from asr.checkpoint import load_ctc_model
from asr.evaluate import Evaluation, evaluate_model
from asr.finetune import FinetuneConfig, FinetuneResult, LabeledClip, Progress, finetune
from asr.lm import (
    language_model_decode,
    load_language_model,
    remove_language_model,
    save_language_model,
)
from asr.model import (
    ClipTranscript,
    CtcModel,
    InferenceConfig,
    TinyModelConfig,
    build_tiny_ctc_model,
    ctc_model_from_encoder,
)
from asr.recipe import RoundConfig, base_kind
from asr.text import Vocabulary


@dataclass(frozen=True)
class PoolDraft:
    """An unlabeled pool clip (never a test or dev clip) as the promoted model drafted it."""

    samples: np.ndarray  # (n,) float32 at 16 kHz
    text: str  # the draft annotators see: LM-decoded where the promoted version kept its LM
    confidence: float  # draft_confidence of its transcript
    greedy_text: str = ""  # the same clip decoded letter by letter


@dataclass(frozen=True)
class RoundData:
    train: Sequence[LabeledClip]  # (samples, normalized text)
    dev: Sequence[LabeledClip]
    test: Sequence[LabeledClip]
    drafts: Sequence[str] = ()  # greedy drafts of the unlabeled pool, for the LM
    pool: Sequence[PoolDraft] = ()  # for self-training


@dataclass(frozen=True)
class LmScore:
    name: str  # what the LM read, for the log
    wer: float  # on dev
    cer: float


@dataclass(frozen=True)
class LmDecision:
    chosen: int | None  # the candidate the test is decoded with; None: no LM at all
    use: bool  # whether transcription decodes with it
    why: str


@dataclass
class RoundResult:
    model_dir: Path  # the best model of the attempt kept, with lm.arpa where use_lm
    finetune: FinetuneResult
    dev_cer: float | None  # best dev CER (greedy); None without a dev set
    test: Evaluation | None  # greedy; None without a test set
    test_lm: Evaluation | None  # with the chosen LM
    lm: LmDecision
    promote: bool
    attempts: list[dict] = field(default_factory=list)  # start, seed, learning rate, outcome
    pseudo_clips: int = 0
    pseudo_minutes: float = 0.0
    pseudo_threshold: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return len(self.attempts) > 1 and not self.attempts[-1]["collapsed"]

    def summary(self) -> dict:
        """What the round page and the model card report (JSON)."""
        return {
            "attempts": self.attempts,
            "recovered": self.recovered,
            "collapsed": bool(self.finetune.collapsed),
            "pseudo_clips": self.pseudo_clips,
            "pseudo_minutes": round(self.pseudo_minutes, 2),
            "pseudo_threshold": self.pseudo_threshold,
            "lm": self.lm.why,
            "lm_used": self.lm.use,
        }


class ModelSource:
    """A round's models: fresh ones of the base (a new head, seeded) and saved ones, sharing
    what can be shared. Whisper's frozen encoder is loaded once; with `encoder_cache` (a dict,
    which may outlive the round: the simulation keeps one for all its rounds) its frozen
    layers run once per clip for every model that reads it.

    base: builtin:whisper-base, builtin:tiny, a saved CTC model directory, or a checkpoint
    (local, or a hub id with allow_download) whose encoder gets a new CTC head."""

    def __init__(
        self,
        base: str,
        vocabulary: Vocabulary,
        *,
        allow_download: bool = False,
        encoder_cache: dict | None = None,
    ) -> None:
        self.base, self.vocabulary, self.allow_download = base, vocabulary, allow_download
        self.encoder_cache = encoder_cache
        self._encoder = None

    def whisper_encoder(self):
        if self._encoder is None:
            from asr.whisper import load_whisper_base_encoder

            self._encoder = load_whisper_base_encoder()
        return self._encoder

    def fresh(self, seed: int) -> CtcModel:
        kind = base_kind(self.base)
        if kind == "whisper-base":
            from asr.whisper import WhisperCtcHeadConfig, whisper_ctc_model

            head = WhisperCtcHeadConfig(seed=seed)
            return self._cached(whisper_ctc_model(self.vocabulary, head, self.whisper_encoder()))
        if kind == "tiny":
            tiny = TinyModelConfig(hidden_size=64, intermediate_size=128, seed=seed)
            return build_tiny_ctc_model(self.vocabulary, tiny)
        if kind == "saved":
            return self.load(Path(self.base))  # its own vocabulary and head
        torch.manual_seed(seed)  # the new head's initialization
        return ctc_model_from_encoder(
            self.base, self.vocabulary, allow_download=self.allow_download
        )

    def load(self, directory: str | Path) -> CtcModel:
        if (Path(directory) / "whisper_ctc.json").is_file():
            from asr.whisper import load_whisper_ctc_model

            return self._cached(load_whisper_ctc_model(directory, self.whisper_encoder()))
        return load_ctc_model(directory)

    def _cached(self, model: CtcModel) -> CtcModel:
        if self.encoder_cache is not None:
            from asr.whisper import cache_encoder_outputs

            cache_encoder_outputs(model.network, self.encoder_cache)
        return model


def run_round(
    data: RoundData,
    config: RoundConfig,
    output_dir: str | Path,
    models: ModelSource,
    *,
    promoted_dir: Path | None = None,
    start_from_promoted: bool = True,
    device: str = "cpu",
    log: Callable[[str], None] = lambda line: None,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RoundResult:
    """Train, test, choose the LM and decide promotion (see the module docstring).

    `promoted_dir`: the promoted model, which drafted the pool, starts the round where
    `start_from_promoted`, and is the one to beat. Raises asr.finetune.TrainingCancelled when
    should_cancel() turns true; run again on the same output_dir, it resumes where it
    stopped."""
    output_dir = Path(output_dir)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    inference = InferenceConfig(device=device)
    promoted = models.load(promoted_dir) if promoted_dir is not None else None

    pseudo: list[LabeledClip] = []
    threshold = None
    if config.self_train and data.pool and promoted is not None and data.dev:
        # the dev drafts as the pool's pseudo-labels are written: LM-decoded where the version
        # kept its LM, unless the greedy ones are asked for
        lm = (
            None
            if config.pseudo_from_greedy
            else language_model_decode(promoted_dir, promoted.vocabulary)
        )
        dev_drafts = evaluate_model(
            promoted, *_split(data.dev), inference_config=inference, decode=lm
        )
        threshold = choose_pseudo_threshold(
            [draft_confidence(t) for t in dev_drafts.transcripts],
            [(c.character_edits, c.reference_characters) for c in dev_drafts.clips],
            config.pseudo_max_dev_cer,
        )
        train_seconds = sum(len(samples) for samples, _ in data.train) / SAMPLE_RATE
        pool = data.pool
        if config.pseudo_from_greedy:
            pool = [replace(draft, text=draft.greedy_text) for draft in pool]
        picked = pick_pseudo_labels(pool, threshold, config.pseudo_max_ratio * train_seconds)
        pseudo = [(draft.samples, draft.text) for draft in picked]
        say(
            f"self-training: {len(pseudo)} pool clips ({_minutes(pseudo):.1f} min) with draft "
            f"confidence >= {threshold:.3f}, where dev drafts had <= "
            f"{config.pseudo_max_dev_cer:.0%} CER; weight {config.pseudo_weight}"
            if threshold is not None
            else "self-training: no pool clips; no confidence kept dev drafts at "
            f"<= {config.pseudo_max_dev_cer:.0%} CER"
        )
    elif config.self_train:
        say("self-training: nothing to draw from yet (needs a promoted model, drafts and dev)")

    attempts, runs = [], []
    for number, (start, seed, learning_rate) in enumerate(
        recovery_plan(config, promoted_dir is not None, start_from_promoted), start=1
    ):
        model = models.load(promoted_dir) if start == "promoted" else models.fresh(seed)
        model = _unfrozen(model, config, say if number == 1 else lambda line: None)
        run_dir = output_dir if number == 1 else output_dir / f"retry-{number - 1}"
        run = finetune(
            model,
            data.train,
            data.dev,
            run_dir,
            _finetune_config(config, seed, learning_rate, device),
            progress=progress,
            should_cancel=should_cancel,
            pseudo=pseudo,
        )
        del model
        attempts.append(
            {
                "start": start,
                "seed": seed,
                "learning_rate": learning_rate,
                "best_dev_cer": None if math.isnan(run.best_dev_cer) else run.best_dev_cer,
                "best_step": run.best_step,
                "steps": run.steps,
                "seconds": round(run.seconds, 1),
                "collapsed": run.collapsed,
            }
        )
        runs.append(run)
        say(
            f"attempt {number} (from {'the promoted model' if start == 'promoted' else 'a new head'}"
            f", seed {seed}, learning rate {learning_rate:g}): {run.steps} steps in "
            f"{run.seconds:.0f} s; best dev CER {run.best_dev_cer:.3f} at step {run.best_step}"
            + (f"; collapsed, {run.collapsed}" if run.collapsed else "")
        )
        if not run.collapsed:
            break
    kept = min(range(len(runs)), key=lambda i: (bool(runs[i].collapsed), _nan_last(runs[i])))
    run = runs[kept]
    if len(runs) > 1:
        say(
            f"recovered: attempt {kept + 1} is kept"
            if not run.collapsed
            else f"every attempt collapsed; attempt {kept + 1} is kept, and not promoted"
        )

    best = models.load(run.model_dir)
    test = (
        evaluate_model(best, *_split(data.test), inference_config=inference) if data.test else None
    )
    lm, test_lm = _language_model(best, run, data, config, inference, say)
    dev_cer = run.best_dev_cer if data.dev else None
    if attempts[0]["start"] == "promoted" and data.dev:
        incumbent = runs[0].initial_dev_cer  # the promoted model, evaluated at step 0
    else:
        incumbent = _incumbent_cer(promoted, data, inference)
    promote = not run.collapsed and beats(
        dev_cer if data.dev else (test.cer if test else None), incumbent
    )
    say(
        f"test WER {_rate(test, 'wer')}, CER {_rate(test, 'cer')}; with the LM: WER "
        f"{_rate(test_lm, 'wer')}, CER {_rate(test_lm, 'cer')}; promoted: {promote}"
    )
    return RoundResult(
        model_dir=run.model_dir,
        finetune=run,
        dev_cer=dev_cer,
        test=test,
        test_lm=test_lm,
        lm=lm,
        promote=promote,
        attempts=attempts,
        pseudo_clips=run.pseudo_clips,
        pseudo_minutes=_minutes(pseudo),
        pseudo_threshold=threshold,
        log=lines,
    )


# --- the decisions, pure ---------------------------------------------------------------------


def recovery_plan(
    config: RoundConfig, has_promoted: bool, start_from_promoted: bool
) -> list[tuple[str, int, float]]:
    """(start, seed, learning rate) per attempt; start is "promoted" or "fresh". The first
    attempt is the round as configured; a retry starts from the promoted model where the
    round started elsewhere, else from a new head with another seed, each at a third of the
    previous learning rate (a head that diverged or stuck at the blank plateau was pushed too
    hard, or started badly)."""
    first = "promoted" if has_promoted and start_from_promoted else "fresh"
    plan = [(first, config.seed, config.learning_rate)]
    for retry in range(1, config.recovery_attempts + 1):
        start = "promoted" if has_promoted and first == "fresh" and retry == 1 else "fresh"
        plan.append((start, config.seed + retry, config.learning_rate / 3**retry))
    return plan


def choose_language_model(
    greedy: tuple[float, float] | None, scores: Sequence[LmScore]
) -> LmDecision:
    """Which LM the test is decoded with, and whether transcription uses it.

    `greedy` is dev (WER, CER) with greedy decoding, None without a dev set; `scores` the
    candidates' dev rates, the one that reads the pool's drafts last. An LM is used where it
    beat greedy decoding on dev (fewer word errors, no more letter errors: with few labels a
    small lexicon forces words and garbles more letters than greedy gets wrong); among those,
    the fewest word errors. If none beat greedy, the same among all, as a measurement only.
    Without a dev set nothing is used; the test is decoded with the one that reads the drafts,
    whose lexicon reaches furthest."""
    if not scores:
        return LmDecision(None, False, "no LM: no words to build it from")
    if greedy is None:
        last = len(scores) - 1
        return LmDecision(last, False, f"the LM from {scores[last].name} is not used: no dev set")
    helping = [i for i, s in enumerate(scores) if s.wer < greedy[0] and s.cer <= greedy[1]]
    chosen = min(helping or range(len(scores)), key=lambda i: (scores[i].wer, scores[i].cer))
    if helping:
        return LmDecision(
            chosen, True, f"the LM from {scores[chosen].name} beat greedy decoding on dev"
        )
    return LmDecision(
        chosen,
        False,
        f"the LM is not used: none beat greedy decoding on dev (tested: the one from "
        f"{scores[chosen].name})",
    )


def beats(candidate_cer: float | None, incumbent_cer: float | None) -> bool:
    """Promotion: lower CER than the promoted model on the same clips; nothing promoted yet
    (or nothing to compare on): yes."""
    if incumbent_cer is None or candidate_cer is None:
        return True
    return candidate_cer < incumbent_cer


def draft_confidence(transcript: ClipTranscript) -> float:
    """A draft's confidence: the geometric mean of its greedy tokens' probabilities (0 for an
    empty draft). One unsure letter in a long clip lowers it less than many do."""
    confidences = np.clip(np.asarray(transcript.token_confidences, np.float64), 1e-9, 1.0)
    return float(np.exp(np.log(confidences).mean())) if len(confidences) else 0.0


def choose_pseudo_threshold(
    confidences: Sequence[float], errors: Sequence[tuple[int, int]], max_cer: float
) -> float | None:
    """The lowest draft confidence at which the dev drafts as confident or more had at most
    `max_cer` CER together (errors: (character edits, reference characters) per dev clip);
    None when not even the most confident dev draft is that good."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    threshold, edits, characters = None, 0, 0
    for i in order:
        edits, characters = edits + errors[i][0], characters + errors[i][1]
        if characters and edits / characters <= max_cer:
            threshold = confidences[i]
    return threshold


def pick_pseudo_labels(
    pool: Sequence[PoolDraft], threshold: float | None, max_seconds: float
) -> list[PoolDraft]:
    """Drafts at or above the threshold with some text, most confident first, up to
    `max_seconds` of audio."""
    if threshold is None:
        return []
    eligible = sorted(
        (d for d in pool if d.confidence >= threshold and d.text.split()),
        key=lambda d: -d.confidence,
    )
    picked, seconds = [], 0.0
    for draft in eligible:
        if seconds + len(draft.samples) / SAMPLE_RATE > max_seconds:
            break
        picked.append(draft)
        seconds += len(draft.samples) / SAMPLE_RATE
    return picked


# --- helpers ---------------------------------------------------------------------------------


def _finetune_config(config: RoundConfig, seed: int, learning_rate: float, device: str):
    return FinetuneConfig(
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=learning_rate,
        warmup_steps=config.resolved_warmup_steps,
        eval_every=config.resolved_eval_every,
        patience=config.patience,
        seed=seed,
        device=device,
        collapse_dev_cer=config.collapse_dev_cer if config.recovery_attempts else 0.0,
        collapse_check_step=config.collapse_check_step,
        pseudo_weight=config.pseudo_weight,
        pseudo_mask_prob=config.pseudo_mask_prob,
        encoder_learning_rate_factor=config.encoder_learning_rate_factor,
    )


def _language_model(best, run: FinetuneResult, data: RoundData, config, inference, say):
    """Write the chosen LM next to the model (removed again where it is not used); returns the
    decision and the test decoded with it."""
    directory = run.model_dir
    transcripts = [text for _, text in data.train]
    candidates = [("the training transcripts", transcripts)]
    if data.drafts:
        candidates.append(
            (
                f"the training transcripts + pool drafts ({len(data.drafts)})",
                transcripts + list(data.drafts),
            )
        )
    candidates = [(name, texts) for name, texts in candidates if any(t.split() for t in texts)]
    if not config.lm_order:
        return LmDecision(None, False, "no LM: its order is 0"), None
    if not candidates:
        decision = choose_language_model(None, [])
        say(decision.why)
        return decision, None
    greedy = dev_rates_at_best_step(run) if data.dev else None  # (WER, CER), measured in training
    scores, decoders = [], []
    for name, texts in candidates if data.dev else candidates[-1:]:
        words = save_language_model(directory, texts, config.lm_order)
        decoder = load_language_model(directory, best.vocabulary)
        if decoder is None:
            remove_language_model(directory)
            decision = LmDecision(None, False, "no LM: no decoder (pip install flashlight-text)")
            say(decision.why)
            return decision, None
        decoders.append(decoder)
        if greedy is None:
            scores.append(LmScore(name, math.nan, math.nan))
            say(f"language model: {words} words from {name}")
            continue
        with_lm = evaluate_model(
            best, *_split(data.dev), inference_config=inference, decode=decoder.decode
        )
        scores.append(LmScore(name, with_lm.wer, with_lm.cer))
        say(
            f"language model from {name} ({words} words): dev WER / CER {with_lm.wer:.3f} / "
            f"{with_lm.cer:.3f}; greedy {greedy[0]:.3f} / {greedy[1]:.3f}"
        )
    decision = choose_language_model(greedy, scores)
    say(decision.why + (": transcription uses it" if decision.use else ""))
    name, decoder = scores[decision.chosen].name, decoders[decision.chosen]
    if name != scores[-1].name:  # the files on disk are the last candidate's
        save_language_model(directory, dict(candidates)[name], config.lm_order)
    test_lm = (
        evaluate_model(best, *_split(data.test), inference_config=inference, decode=decoder.decode)
        if data.test
        else None
    )
    if not decision.use:
        remove_language_model(directory)
    return decision, test_lm


def _incumbent_cer(promoted: CtcModel | None, data: RoundData, inference) -> float | None:
    """The promoted model's greedy CER on this round's dev set (test set without one)."""
    clips = data.dev or data.test
    if promoted is None or not clips:
        return None
    return evaluate_model(promoted, *_split(clips), inference_config=inference).cer


def _unfrozen(model: CtcModel, config: RoundConfig, say) -> CtcModel:
    """The model with its encoder's top `config.unfreeze_top_layers` layers set to train. A
    model whose layers were fine-tuned before keeps them (they are saved with it) and trains
    only as many as asked now."""
    network = model.network
    if not hasattr(network, "head_config"):  # not Whisper-based
        return model
    wanted = config.unfreeze_top_layers
    fine_tuned = network.head_config.unfreeze_top_layers
    if wanted > fine_tuned:
        from asr.whisper import unfreeze_top_layers

        say(f"the encoder's top {wanted} layers train too, at "
            f"{config.encoder_learning_rate_factor:g} of the learning rate")  # fmt: skip
        return unfreeze_top_layers(model, wanted)
    if fine_tuned:  # its own copy of the encoder: nothing shared changes
        network.freeze_encoder(wanted)
    return model


def dev_rates_at_best_step(run: FinetuneResult) -> tuple[float, float]:
    """Greedy dev (WER, CER) of the kept model, as fine-tuning measured it at its best step."""
    return next((wer, cer) for step, wer, cer in run.dev_history if step == run.best_step)


def _split(clips: Sequence[LabeledClip]) -> tuple[list[np.ndarray], list[str]]:
    return [samples for samples, _ in clips], [text for _, text in clips]


def _minutes(clips: Sequence[LabeledClip]) -> float:
    return sum(len(samples) for samples, _ in clips) / SAMPLE_RATE / 60


def _nan_last(run: FinetuneResult) -> float:
    return math.inf if math.isnan(run.best_dev_cer) else run.best_dev_cer


def _rate(evaluation: Evaluation | None, name: str) -> str:
    return "-" if evaluation is None else f"{getattr(evaluation, name):.3f}"
