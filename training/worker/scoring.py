"""Scoring the pool: the promoted model writes a draft for every unlabeled clip and rates how
much labeling it would teach, which orders the annotation queue."""

import logging

import numpy as np
from django.conf import settings
from django.utils import timezone

from asr.model import InferenceConfig, pick_device, transcribe_clips
from asr.round import draft_confidence
from asr.select import pick_diverse_uncertain, pick_new_words
from asr.text import normalize_text
from labeling.models import Clip, Project
from labeling.selectors import labeled_set
from training.models import ScoringRun
from training.worker import base_models
from training.worker.trainer import Heartbeat, clip_samples

log = logging.getLogger(__name__)

CHUNK = 32  # clips per progress update
# The first picks of the diversity-aware picker rank above every plain uncertainty score.
PICKED_BASE = 1000.0


def scoring_run(*, scoring_id: int) -> None:
    claimed = ScoringRun.objects.filter(pk=scoring_id, status=ScoringRun.Status.QUEUED).update(
        status=ScoringRun.Status.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    run = ScoringRun.objects.select_related("project", "model_version__round").get(pk=scoring_id)
    try:
        with Heartbeat(ScoringRun, scoring_id):
            _score(run)
    except Exception as error:
        ScoringRun.objects.filter(pk=scoring_id).update(
            status=ScoringRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        raise
    ScoringRun.objects.filter(pk=scoring_id).update(
        status=ScoringRun.Status.SUCCEEDED, finished_at=timezone.now()
    )


def _score(run: ScoringRun) -> None:
    project = run.project
    model = base_models.load_version(run.model_version.directory)
    # Annotators see the draft decoded with the version's lexicon + LM where its round kept
    # them (they lowered dev WER without raising CER; with the pool's drafts in the LM they
    # cut CER by a third or more, docs/benchmarks.md), else the greedy one. The greedy draft
    # is kept too: the next LM and the new-words picker read letters, not forced words.
    decode = base_models.version_decoder(model, run.model_version.directory)
    config = InferenceConfig(device=pick_device())
    pool = list(project.clips.filter(status=Clip.Status.UNLABELED).order_by("pk"))
    ScoringRun.objects.filter(pk=run.pk).update(clips_total=len(pool))
    drafts: list[str] = []
    shown: list[str] = []
    confidences: list[float] = []
    uncertainty: list[float] = []
    embeddings: list[np.ndarray] = []
    for start in range(0, len(pool), CHUNK):
        chunk = pool[start : start + CHUNK]
        for result in transcribe_clips(model, [clip_samples(c) for c in chunk], config, decode):
            drafts.append(result.greedy_text)
            shown.append(result.text)
            confidences.append(draft_confidence(result))
            uncertainty.append(result.mean_frame_entropy)
            embeddings.append(result.embedding)
        ScoringRun.objects.filter(pk=run.pk).update(
            clips_done=start + len(chunk), heartbeat_at=timezone.now()
        )
    if not pool:
        return

    scores = np.asarray(uncertainty, np.float64)
    count = min(settings.VERNACULAR_SCORING_PICKS, len(pool))
    if project.selection == Project.Selection.NEW_WORDS:
        picks = _pick_new_words(project, pool, drafts, count)
    else:
        picks = _pick_diverse(project, model, config, embeddings, scores, count)
    for rank, index in enumerate(picks):
        scores[index] = PICKED_BASE - rank
    number = run.model_version.round.number
    for clip, draft, text, confidence, score in zip(
        pool, drafts, shown, confidences, scores, strict=True
    ):
        clip.draft_greedy, clip.draft_text = draft, text
        clip.draft_confidence, clip.selection_score = confidence, float(score)
        clip.draft_round, clip.draft_with_lm = number, decode is not None
    # Only clips still unlabeled: someone may have transcribed one meanwhile.
    still_open = set(
        Clip.objects.filter(pk__in=[c.pk for c in pool], status=Clip.Status.UNLABELED).values_list(
            "pk", flat=True
        )
    )
    Clip.objects.bulk_update(
        [c for c in pool if c.pk in still_open],
        [
            "draft_text",
            "draft_greedy",
            "draft_confidence",
            "selection_score",
            "draft_round",
            "draft_with_lm",
        ],
        batch_size=500,
    )
    log.info("scored %d clips of %s", len(pool), project)


def _pick_new_words(project, pool: list[Clip], drafts: list[str], count: int) -> list[int]:
    """The words of the training transcripts are known: they are the ones with true
    spellings, written as training sees them (the project's text rules), as the drafts are.
    The drafts are the greedy ones, never words an LM forced."""
    rules = project.text_rules()
    known_words = {
        word
        for transcript in labeled_set(project)
        if transcript.clip.split not in (Clip.Split.TEST, Clip.Split.DEV)  # as rounds count
        for word in normalize_text(transcript.text, rules).split()
    }
    seconds = np.array([clip.duration_seconds for clip in pool])
    return pick_new_words(drafts, seconds, known_words, count)


def _pick_diverse(project, model, config, embeddings, scores, count: int) -> list[int]:
    # Distance to what is labeled already keeps the picker from choosing near-copies of it.
    labeled = list(
        project.clips.filter(split=Clip.Split.TRAIN)
        .exclude(status__in=[Clip.Status.UNLABELED, Clip.Status.FLAGGED])
        .order_by("-pk")[: settings.VERNACULAR_SCORING_LABELED_SAMPLE]
    )
    labeled_embeddings = None
    if labeled:
        results = transcribe_clips(model, [clip_samples(c) for c in labeled], config)
        labeled_embeddings = np.stack([r.embedding for r in results])
    return pick_diverse_uncertain(np.stack(embeddings), scores, count, labeled_embeddings)
