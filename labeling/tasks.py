from celery import shared_task

from labeling import ingest


# Returns nothing: no result to store, and sending stays off the result backend (see
# training/tasks.py).
@shared_task(name="labeling.recording_ingest", ignore_result=True)
def recording_ingest_task(recording_id: int) -> None:
    ingest.recording_ingest(recording_id=recording_id)
