from celery import shared_task

from labeling import ingest


@shared_task(name="labeling.recording_ingest")
def recording_ingest_task(recording_id: int) -> None:
    ingest.recording_ingest(recording_id=recording_id)
