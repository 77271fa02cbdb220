"""Training rounds, the gpu worker's side: claim a round, fine-tune, test, promote.

A round is claimed with a conditional UPDATE, so the same round never trains twice at once;
a heartbeat thread writes while it runs, so a killed worker is noticed (training/rounds.py)
and the round resumes from its last checkpoint: asr.finetune picks up the checkpoint in the
round's directory by itself.
"""

import logging
import threading
import time
import traceback
import wave
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from asr.evaluate import evaluate_model
from asr.finetune import FinetuneConfig, Progress, TrainingCancelled, finetune
from asr.lm import remove_language_model, save_language_model
from asr.text import normalize_text
from labeling.models import Clip, Project
from labeling.selectors import labeled_set, pool_drafts
from training import base_models
from training.models import ModelVersion, TrainingRound
from training.rounds import round_log as _log
from training.rounds import scoring_queue

log = logging.getLogger(__name__)


def clip_samples(clip: Clip) -> np.ndarray:
    """A stored clip (16 kHz mono 16-bit wav, as ingest writes them) -> (n,) float32."""
    with clip.audio.open("rb") as handle, wave.open(handle) as source:
        pcm = source.readframes(source.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _labeled_clips(project: Project, clip_ids: list[int]) -> list[tuple[int, np.ndarray, str]]:
    """(clip id, samples, normalized text) for the snapshot's clips, in id order."""
    texts = {t.clip_id: t.text for t in labeled_set(project)}
    rules = project.text_rules()
    clips = Clip.objects.filter(project=project, pk__in=clip_ids).order_by("pk")
    # A transcript may have changed (review) since the snapshot: the latest standing one counts;
    # a clip that lost its transcript (rejected since) is left out.
    return [
        (c.pk, clip_samples(c), normalize_text(texts[c.pk], rules)) for c in clips if c.pk in texts
    ]


def _audio_and_text(clips) -> list[tuple[np.ndarray, str]]:
    return [(samples, text) for _, samples, text in clips]


class Heartbeat:
    """Writes heartbeat_at every few seconds from a thread, while the round runs."""

    def __init__(self, model, pk: int, every: float | None = None):
        self.model, self.pk = model, pk
        self.every = every or settings.VERNACULAR_HEARTBEAT_SECONDS
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(self.every):
                try:
                    self.model.objects.filter(pk=self.pk).update(heartbeat_at=timezone.now())
                except Exception:  # a busy or restarting database: try again next beat
                    log.warning(
                        "heartbeat of %s %s failed", self.model.__name__, self.pk, exc_info=True
                    )
                    connection.close()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)
        return False


def round_run(*, round_id: int, worker: str) -> None:
    now = timezone.now()
    claimed = TrainingRound.objects.filter(pk=round_id, status=TrainingRound.Status.QUEUED).update(
        status=TrainingRound.Status.RUNNING,
        worker=worker,
        heartbeat_at=now,
        started_at=Coalesce(F("started_at"), now),
        attempts=F("attempts") + 1,
        phase="loading",
    )
    if not claimed:
        log.info("round %s is not queued; nothing to do", round_id)
        return
    training_round = TrainingRound.objects.select_related("project").get(pk=round_id)
    _log(round_id, f"{now:%H:%M:%S} {worker}: attempt {training_round.attempts}")
    # Only this claim may end the round: if it was reaped and claimed again meanwhile (this
    # worker froze, then woke), the newer attempt owns it.
    mine = TrainingRound.objects.filter(
        pk=round_id, status=TrainingRound.Status.RUNNING, attempts=training_round.attempts
    )
    try:
        with Heartbeat(TrainingRound, round_id):
            version = _train_and_evaluate(training_round)
    except TrainingCancelled as stop:
        mine.update(status=TrainingRound.Status.CANCELLED, finished_at=timezone.now(), phase="")
        _log(round_id, f"cancelled at step {stop.step}")
        return
    except Exception as error:
        mine.update(
            status=TrainingRound.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        _log(round_id, traceback.format_exc())
        raise
    mine.update(status=TrainingRound.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")
    if version.promoted:
        scoring_queue(version=version)


def _train_and_evaluate(training_round: TrainingRound) -> ModelVersion:
    project = training_round.project
    round_id = training_round.pk
    vocabulary = base_models.project_vocabulary(project)
    if training_round.base.startswith("version:"):
        number = int(training_round.base.split(":", 1)[1])
        source = project.model_versions.get(round__number=number)
        model = base_models.load_version(source.directory)
    else:
        model = base_models.base_model(training_round.base, vocabulary)
    train = _labeled_clips(project, training_round.train_clip_ids)
    dev = _labeled_clips(project, training_round.dev_clip_ids)
    test = _labeled_clips(project, training_round.test_clip_ids)
    _log(
        round_id,
        f"train {len(train)} clips, dev {len(dev)}, test {len(test)}; from {training_round.base}",
    )

    last_write = [0.0]
    last_cancel_check = [0.0, False]

    def on_progress(p: Progress) -> None:
        if time.monotonic() - last_write[0] < 1.0 and p.step < p.total:
            return
        last_write[0] = time.monotonic()
        TrainingRound.objects.filter(pk=round_id).update(
            phase=p.phase,
            step=p.step,
            total_steps=p.total,
            loss=p.loss,
            eta_seconds=p.eta_seconds,
            heartbeat_at=timezone.now(),
        )

    def should_cancel() -> bool:
        if time.monotonic() - last_cancel_check[0] > 2.0:
            last_cancel_check[0] = time.monotonic()
            last_cancel_check[1] = TrainingRound.objects.filter(
                pk=round_id, cancel_requested=True
            ).exists()
        return last_cancel_check[1]

    output = (
        Path(settings.VERNACULAR_MODEL_DIR)
        / f"project-{project.pk}"
        / f"round-{training_round.number}"
    )
    config = FinetuneConfig(**training_round.config)
    _cache_encoder_outputs(model, train + dev)
    result = finetune(
        model,
        _audio_and_text(train),
        _audio_and_text(dev),
        output,
        config,
        progress=on_progress,
        should_cancel=should_cancel,
    )
    vars(model.network).pop("encode", None)  # the encoder cache goes before testing begins
    del model
    _log(
        round_id,
        f"trained {result.steps} steps in {result.seconds:.0f} s; best dev CER "
        f"{result.best_dev_cer:.3f} at step {result.best_step}",
    )

    TrainingRound.objects.filter(pk=round_id).update(phase="testing")
    best = base_models.load_version(result.model_dir)
    _cache_encoder_outputs(best, test + dev)  # read several times below: encode once
    decode, use_lm = _choose_language_model(
        round_id, best, dev, result.model_dir, [text for _, _, text in train], project
    )
    test_wer = test_cer = test_wer_lm = test_cer_lm = None
    details = []
    if test:
        evaluation = _evaluate(best, test)
        test_wer, test_cer = evaluation.wer, evaluation.cer
        with_lm = _evaluate(best, test, decode) if decode else None
        if with_lm:
            test_wer_lm, test_cer_lm = with_lm.wer, with_lm.cer
        for row, ((clip_id, _, _), errors) in enumerate(zip(test, evaluation.clips, strict=True)):
            details.append(
                {
                    "clip": clip_id,
                    "reference": errors.reference,
                    "hypothesis": errors.hypothesis,
                    "wer": errors.wer,
                    "cer": errors.cer,
                }
                | ({"hypothesis_lm": with_lm.clips[row].hypothesis} if with_lm else {})
            )
    if not use_lm:
        remove_language_model(result.model_dir)
    dev_cer = result.best_dev_cer if dev else None
    promote = _beats_promoted(project, best_dev_cer=dev_cer, dev=dev, test_cer=test_cer, test=test)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project,
            round=training_round,
            directory=str(result.model_dir),
            labeled_minutes=training_round.labeled_minutes,
            test_wer=test_wer,
            test_cer=test_cer,
            test_wer_lm=test_wer_lm,
            test_cer_lm=test_cer_lm,
            dev_cer=dev_cer,
            test_clips=len(test),
            test_details=details,
        )
        if promote:
            ModelVersion.objects.filter(project=project, promoted=True).update(promoted=False)
            version.promoted, version.promoted_at = True, timezone.now()
            version.save(update_fields=["promoted", "promoted_at"])
    _log(
        round_id,
        f"test WER {test_wer}, CER {test_cer}; with the LM: WER {test_wer_lm}, CER "
        f"{test_cer_lm}; promoted: {promote}",
    )
    return version


def _beats_promoted(project, *, best_dev_cer, dev, test_cer, test) -> bool:
    """Better than the promoted model on this round's dev set (its test set without one)."""
    promoted = project.model_versions.filter(promoted=True).first()
    if promoted is None:
        return True
    current = base_models.load_version(promoted.directory)
    if dev and best_dev_cer is not None:
        return best_dev_cer < _evaluate(current, dev).cer
    if test and test_cer is not None:
        return test_cer < _evaluate(current, test).cer
    return True


def _evaluate(model, clips, decode=None):
    return evaluate_model(
        model, [samples for _, samples, _ in clips], [text for _, _, text in clips], decode=decode
    )


def _choose_language_model(round_id, model, dev, directory: Path, transcripts, project):
    """Write the round's lexicon + word LM next to its model; returns (decode, use_lm).

    Two LMs compete on the dev set: one from the training transcripts, and one that also reads
    the pool's drafts (by the model that last scored it): their frequent words are mostly
    spelled right and fill the lexicon far beyond the labeled words, which lowered test CER in
    every simulated round, and WER in most (docs/benchmarks.md, "Drafts in the language
    model"). Evaluation clips are never drafts. Transcription decodes with the winner only
    where it lowered dev WER without raising CER against greedy decoding: with few labels and
    no drafts, forcing words into a small lexicon garbles more letters than greedy decoding
    gets wrong. Without a dev set nothing is chosen or used; the test is still decoded with
    the LM that reads the drafts, as a measurement. `decode` is None without flashlight-text."""
    drafts = pool_drafts(project)
    candidates = [("the training transcripts", transcripts)]
    if drafts:
        candidates.append(
            (f"the training transcripts + pool drafts ({len(drafts)})", transcripts + drafts)
        )
    candidates = [(name, texts) for name, texts in candidates if any(t.split() for t in texts)]
    if not candidates:
        _log(round_id, "the LM is not used: no words to build it from")
        return None, False
    if not dev:
        name, texts = candidates[-1]
        words = save_language_model(directory, texts)
        _log(round_id, f"language model: {words} words from {name}; not used: no dev set")
        return base_models.version_decoder(model, directory), False
    greedy = _evaluate(model, dev)
    scored = []
    for name, texts in candidates:
        words = save_language_model(directory, texts)
        decode = base_models.version_decoder(model, directory)
        if decode is None:
            _log(round_id, "the LM is not used: no decoder (pip install flashlight-text)")
            return None, False
        with_lm = _evaluate(model, dev, decode)
        scored.append((with_lm.wer, with_lm.cer, name, texts, decode))
        _log(
            round_id,
            f"language model from {name} ({words} words): dev WER / CER {with_lm.wer:.3f} / "
            f"{with_lm.cer:.3f}; greedy {greedy.wer:.3f} / {greedy.cer:.3f}",
        )
    # Among the LMs that beat greedy decoding on dev (fewer word errors, no more letter
    # errors), the fewest word errors; if none does, the same among all, as a measurement.
    helping = [row for row in scored if row[0] < greedy.wer and row[1] <= greedy.cer]
    wer, cer, name, texts, decode = min(helping or scored, key=lambda row: row[:2])
    if texts is not candidates[-1][1]:  # the files on disk are the last candidate's
        save_language_model(directory, texts)
    use_lm = bool(helping)
    _log(
        round_id,
        f"the LM from {name} beat greedy decoding on dev: transcription uses it"
        if use_lm
        else f"the LM is not used: none beat greedy decoding on dev (tested: the one from {name})",
    )
    return decode, use_lm


def _cache_encoder_outputs(model, clips) -> None:
    """With a frozen Whisper encoder, encode each clip once for the whole round rather than at
    every step, when its outputs fit in VERNACULAR_ENCODER_CACHE_MB (float16, every layer the
    head reads)."""
    network = model.network
    if not getattr(network, "encoder_frozen", False):
        return
    from asr.whisper import SAMPLES_PER_FRAME, cache_encoder_outputs

    frames = sum(len(samples) for _, samples, _ in clips) / SAMPLES_PER_FRAME
    layers = len(network.head_config.encoder_layers)
    megabytes = frames * layers * network.encoder.config.width * 2 / 1e6  # float16
    if megabytes <= settings.VERNACULAR_ENCODER_CACHE_MB:
        cache_encoder_outputs(network, {})
