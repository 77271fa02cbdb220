"""The gpu worker's side of untimed transcripts: a recording and its text, aligned with the
project's promoted model (asr.align), become train clips; low-scoring ones wait in Review."""

import torch
from django.utils import timezone

from asr.align import REVIEW_BELOW, AlignmentError, align_transcript
from labeling.ingest import UploadLimits, decode_stored, labeled_clip_store
from labeling.models import Recording
from training import base_models


def recording_align(*, recording_id: int) -> None:
    claimed = Recording.objects.filter(pk=recording_id, status=Recording.Status.QUEUED).update(
        status=Recording.Status.INGESTING, progress=0.0
    )
    if not claimed:
        return
    recording = Recording.objects.select_related("project").get(pk=recording_id)

    def fail(message: str) -> None:
        Recording.objects.filter(pk=recording_id).update(
            status=Recording.Status.FAILED, error=message
        )

    version = recording.project.model_versions.filter(promoted=True).first()
    if version is None:
        fail("No promoted model to align the text with: run a round, then press Retry.")
        return
    try:
        samples = decode_stored(
            recording.audio, recording.original_name, UploadLimits.from_settings().max_seconds
        )
        model = base_models.load_version(version.directory)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        aligned = align_transcript(model, samples, recording.untimed_lines, device)
    except AlignmentError as error:
        fail(f"Could not align the text with the recording: {error}.")
        return
    except Exception as error:
        fail(f"Alignment crashed ({type(error).__name__}). Retry, or tell your admin.")
        raise
    low = 0
    for line in aligned:
        accepted = line.score >= REVIEW_BELOW
        low += not accepted
        labeled_clip_store(
            recording, samples, line.start_sample, line.end_sample, line.text, accepted
        )
    note = f"aligned {len(aligned)} lines of its text with model {version.round.number}"
    if low:
        note += f"; {low} fit the audio badly and wait in Review"
    Recording.objects.filter(pk=recording_id).update(
        status=Recording.Status.READY,
        progress=1.0,
        error="",
        note="; ".join(filter(None, [recording.note, note])),
        ingested_at=timezone.now(),
    )
