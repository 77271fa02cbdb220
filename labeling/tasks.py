from celery import shared_task


# Returns nothing: no result to store, and sending stays off the result backend (see
# training/tasks.py).
@shared_task(name="labeling.recording_ingest", ignore_result=True)
def recording_ingest_task(recording_id: int) -> None:
    from labeling.ingest import recording_ingest  # tasks import what they run, when they run

    recording_ingest(recording_id=recording_id)
