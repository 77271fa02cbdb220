"""Training rounds, the gpu worker's side: claim a round, fine-tune, test, promote.

A round is claimed with a conditional UPDATE, so the same round never trains twice at once;
a heartbeat thread writes while it runs, so a killed worker is noticed (training/rounds.py)
and the round resumes from its last checkpoint: asr.finetune picks up the checkpoint in the
round's directory by itself.
"""

import json
import logging
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

import asr.round
from asr.audio import SAMPLE_RATE, read_wav16
from asr.finetune import Progress, TrainingCancelled
from asr.model import pick_device
from asr.recipe import round_config_from_stored
from asr.round import ModelSource, PoolDraft, RoundData
from asr.text import normalize_text
from labeling.models import Clip, Project
from labeling.queue import pool_clips_draw_for_training
from labeling.selectors import labeled_set, pool_confident_drafts, pool_drafts
from training.models import ModelVersion, TrainingRound
from training.rounds import round_log as _log
from training.rounds import scoring_queue
from training.selectors import project_base, promoted_version
from training.worker import base_models

log = logging.getLogger(__name__)


def clip_samples(clip: Clip) -> np.ndarray:
    """A stored clip (16 kHz mono 16-bit wav, as ingest writes them) -> (n,) float32."""
    with clip.audio.open("rb") as handle:
        samples = read_wav16(handle)
    if samples is None:
        raise ValueError(f"clip {clip.pk}: its stored audio is not a 16 kHz mono 16-bit WAV")
    return samples


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
    """Fetch the round's clips, run the round recipe (asr.round, the same one `asr simulate`
    runs), write what it found."""
    project = training_round.project
    round_id = training_round.pk
    config = round_config_from_stored(training_round.config)
    train = _labeled_clips(project, training_round.train_clip_ids)
    dev = _labeled_clips(project, training_round.dev_clip_ids)
    test = _labeled_clips(project, training_round.test_clip_ids)
    promoted = promoted_version(project)
    from_promoted = training_round.continues_round is not None
    if from_promoted:  # the version the round was queued to continue from
        promoted = project.model_versions.get(round__number=training_round.continues_round)
    output = (
        Path(settings.VERNACULAR_MODEL_DIR)
        / f"project-{project.pk}"
        / f"round-{training_round.number}"
    )
    pool = _pool_drafts(project, config, train, output) if config.self_train else []
    _log(
        round_id,
        f"train {len(train)} clips, dev {len(dev)}, test {len(test)}; from {training_round.base}"
        + (f"; {len(pool)} confident pool drafts to choose from" if config.self_train else ""),
    )
    clips = train + dev + test
    samples = [s for _, s, _ in clips] + [draft.samples for draft in pool]
    # a new head is of the base the round was queued with (a version's own base otherwise)
    base = None if from_promoted else training_round.base
    models = ModelSource(
        base or project_base(project),
        base_models.project_vocabulary(project),
        allow_download=settings.VERNACULAR_ALLOW_MODEL_DOWNLOAD,
        encoder_cache={} if _encoder_outputs_fit(samples) else None,
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

    result = asr.round.run_round(  # the one round recipe, the same in asr simulate
        RoundData(
            train=_audio_and_text(train),
            dev=_audio_and_text(dev),
            test=_audio_and_text(test),
            drafts=pool_drafts(project),
            pool=pool,
        ),
        config,
        output,
        models,
        promoted_dir=Path(promoted.directory) if promoted else None,
        start_from_promoted=from_promoted,
        device=pick_device(),
        log=lambda line: _log(round_id, line),
        progress=on_progress,
        should_cancel=should_cancel,
    )
    details = []
    if result.test:
        for row, ((clip_id, _, _), errors) in enumerate(zip(test, result.test.clips, strict=True)):
            details.append(
                {
                    "clip": clip_id,
                    "reference": errors.reference,
                    "hypothesis": errors.hypothesis,
                    "wer": errors.wer,
                    "cer": errors.cer,
                }
                | (
                    {"hypothesis_lm": result.test_lm.clips[row].hypothesis}
                    if result.test_lm
                    else {}
                )
            )
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project,
            round=training_round,
            directory=str(result.model_dir),
            labeled_minutes=training_round.labeled_minutes,
            test_wer=result.test.wer if result.test else None,
            test_cer=result.test.cer if result.test else None,
            test_wer_lm=result.test_lm.wer if result.test_lm else None,
            test_cer_lm=result.test_lm.cer if result.test_lm else None,
            dev_cer=result.dev_cer,
            test_clips=len(test),
            test_details=details,
            recipe=result.summary(),
        )
        if result.promote:
            ModelVersion.objects.filter(project=project, promoted=True).update(promoted=False)
            version.promoted, version.promoted_at = True, timezone.now()
            version.save(update_fields=["promoted", "promoted_at"])
    return version


def _pool_drafts(project: Project, config, train, output: Path) -> list[PoolDraft]:
    """The pool's most confident drafts, up to the most self-training could take; never a test
    or dev clip (pool_confident_drafts leaves them out, labeled or not). Kept in the round's
    directory: a resumed round trains on the same ones, whatever was labeled or scored since.
    They are marked as training clips, so no later test or dev draw takes audio a model has
    trained on."""
    saved = output / "pool.json"
    rules = project.text_rules()
    if saved.is_file():
        rows = json.loads(saved.read_text())
    else:
        # the recipe's own cap (pseudo_max_ratio), applied here too: only that much is read
        train_seconds = sum(len(samples) for _, samples, _ in train) / SAMPLE_RATE
        clips = pool_confident_drafts(project, config.pseudo_max_ratio * train_seconds)
        # they become training clips first: one whose recording was drawn into test or dev
        # since the read is left out
        kept = pool_clips_draw_for_training(project=project, clip_ids=[c.pk for c in clips])
        rows = [
            [c.pk, normalize_text(c.draft_text, rules), c.draft_confidence, c.draft_greedy]
            for c in clips
            if c.pk in kept
        ]
        output.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(rows))
    clips = Clip.objects.in_bulk([row[0] for row in rows])
    return [
        PoolDraft(clip_samples(clips[pk]), text, confidence, normalize_text(greedy, rules))
        for pk, text, confidence, greedy in rows
        if pk in clips
    ]


def _encoder_outputs_fit(clips: list[np.ndarray]) -> bool:
    """Whether a frozen Whisper encoder's outputs of these clips fit in
    VERNACULAR_ENCODER_CACHE_MB (float16, every layer the default head reads): then each clip
    is encoded once for the whole round rather than at every step. A round whose models
    differ in how many top layers train (a promoted model that trained some, a fresh retry
    that trains none) caches each set of frozen layers, up to twice this."""
    from asr.whisper import SAMPLES_PER_FRAME, WhisperCtcHeadConfig, WhisperEncoderConfig

    frames = sum(len(samples) for samples in clips) / SAMPLES_PER_FRAME
    layers = len(WhisperCtcHeadConfig().encoder_layers)
    megabytes = frames * layers * WhisperEncoderConfig().width * 2 / 1e6  # float16
    return megabytes <= settings.VERNACULAR_ENCODER_CACHE_MB
