"""The gpu worker's side of transcription jobs: long audio through segmentation."""

from django.utils import timezone

from asr.model import InferenceConfig, pick_device, transcribe_recording
from labeling.ingest import UploadLimits, decode_stored
from training.models import TranscriptionJob
from training.worker import base_models


def transcription_run(*, job_id: int) -> None:
    claimed = TranscriptionJob.objects.filter(
        pk=job_id, status=TranscriptionJob.Status.QUEUED
    ).update(status=TranscriptionJob.Status.RUNNING)
    if not claimed:
        return
    job = TranscriptionJob.objects.select_related("model_version").get(pk=job_id)
    try:
        max_seconds = UploadLimits.from_settings().max_seconds
        samples = decode_stored(job.audio, job.original_name, max_seconds)
        directory = job.model_version.directory
        model = base_models.load_version(directory)
        device = pick_device()
        pieces = transcribe_recording(
            model,
            samples,
            inference_config=InferenceConfig(device=device),
            decode=base_models.version_decoder(model, directory),
        )
    except Exception as error:
        TranscriptionJob.objects.filter(pk=job_id).update(
            status=TranscriptionJob.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        raise
    segments = [
        {
            "start": round(span.start_seconds, 2),
            "end": round(span.end_seconds, 2),
            "text": result.text,
        }
        for span, result in pieces
    ]
    TranscriptionJob.objects.filter(pk=job_id).update(
        status=TranscriptionJob.Status.SUCCEEDED,
        segments=segments,
        text=" ".join(s["text"] for s in segments if s["text"]),
        finished_at=timezone.now(),
    )
