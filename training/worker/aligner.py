"""The gpu worker's side of untimed transcripts: a recording and its text become train clips.

The text is placed with the letters of the project's promoted model; before any round, with
those of its base where the base is a saved CTC model that knows the alphabet; with neither
(the built-in Whisper base has no letters until a round trains its head), by the
recording's pauses and the lines' lengths (asr.align.align_by_pauses). Lines that fit the
audio badly wait in Review, and so does every line placed by pauses alone."""

from django.utils import timezone

from asr.align import REVIEW_BELOW, AlignmentError, align_by_pauses, align_transcript
from asr.model import pick_device
from labeling.ingest import (
    UploadLimits,
    decode_stored,
    in_repeated_audio,
    labeled_clip_store,
    repeated_note,
)
from labeling.models import Recording
from training.selectors import promoted_version
from training.worker import base_models


def recording_align(*, recording_id: int) -> None:
    claimed = Recording.objects.filter(pk=recording_id, status=Recording.Status.QUEUED).update(
        status=Recording.Status.INGESTING, progress=0.0
    )
    if not claimed:
        return
    recording = Recording.objects.select_related("project").get(pk=recording_id)
    project, lines = recording.project, recording.untimed_lines

    def fail(message: str) -> None:
        Recording.objects.filter(pk=recording_id).update(
            status=Recording.Status.FAILED, error=message
        )

    try:
        samples = decode_stored(
            recording.audio, recording.original_name, UploadLimits.from_settings().max_seconds
        )
        version = promoted_version(project)
        if version is not None:
            model = base_models.load_version(version.directory)
            source = f"with model {version.round.number}"
        else:
            model, source = base_models.base_with_letters(project, lines), "with the base model"
        if model is None:
            aligned, source = align_by_pauses(samples, lines), "by its pauses and line lengths"
        else:
            aligned = align_transcript(model, samples, lines, pick_device())
    except AlignmentError as error:
        fail(f"Could not align the text with the recording: {error}.")
        return
    except Exception as error:
        fail(f"Alignment crashed ({type(error).__name__}). Retry, or tell your admin.")
        raise
    low = skipped = stored = 0
    for line in aligned:
        if in_repeated_audio(recording, line.start_sample, line.end_sample):
            skipped += 1
            continue
        accepted = model is not None and line.score >= REVIEW_BELOW
        clip = labeled_clip_store(
            recording, samples, line.start_sample, line.end_sample, line.text, accepted, True
        )
        stored += clip is not None  # None: under 0.1 s, or there already (a retry)
        low += clip is not None and not accepted
    counted = f"{len(aligned)}" if stored == len(aligned) else f"{stored} of the {len(aligned)}"
    note = f"aligned {counted} lines of its text {source}"
    if model is None:
        note += " (no model knows the letters yet); all wait in Review: listen before they train"
    elif low:
        note += f"; {low} fit the audio badly and wait in Review"
    note = "; ".join(filter(None, [note, repeated_note(skipped)]))
    Recording.objects.filter(pk=recording_id).update(
        status=Recording.Status.READY,
        progress=1.0,
        error="",
        note="; ".join(filter(None, [recording.note, note])),
        ingested_at=timezone.now(),
    )
