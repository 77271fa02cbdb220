from celery import shared_task


@shared_task(name="training.worker_echo")
def worker_echo(token: str) -> dict:
    """Answers with the token and who handled it: proves a queue has a live worker."""
    request = worker_echo.request
    return {
        "token": token,
        "worker": request.hostname,
        "queue": (request.delivery_info or {}).get("routing_key", ""),
    }


# The work tasks keep their state in their row and return nothing, so they store no result.
# That also keeps sending them off the result backend: with Redis down, a task that expects a
# result makes the sender wait through 20 reconnects and then raise a RuntimeError that
# dispatch_on_commit cannot tell from a bug, instead of the quick OperationalError it handles.
@shared_task(name="training.round_train", ignore_result=True)
def round_train_task(round_id: int) -> None:
    from training.worker.trainer import round_run

    round_run(round_id=round_id, worker=round_train_task.request.hostname or "")


@shared_task(name="training.reap_stale", ignore_result=True)
def reap_stale_task() -> None:
    """On the beat schedule (settings.CELERY_BEAT_SCHEDULE), on the default queue: no torch."""
    from training.rounds import rounds_reap_all

    rounds_reap_all()


@shared_task(name="training.auto_round", ignore_result=True)
def round_auto_task(project_id: int) -> None:
    """Sent on commit of a new label where the project starts rounds by itself; default
    queue (no torch): it only decides and queues the round."""
    from labeling.models import Project
    from training.rounds import round_auto_start

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        round_auto_start(project=project)


@shared_task(name="training.score_pool", ignore_result=True)
def scoring_task(scoring_id: int) -> None:
    from training.worker.scoring import scoring_run

    scoring_run(scoring_id=scoring_id)


@shared_task(name="training.transcribe", ignore_result=True)
def transcription_task(job_id: int) -> None:
    from training.worker.transcriber import transcription_run

    transcription_run(job_id=job_id)


@shared_task(name="training.export_offline", ignore_result=True)
def offline_export_task(version_id: int) -> None:
    from training.worker.exporter import offline_export_run

    offline_export_run(version_id=version_id)


@shared_task(name="training.align_recording", ignore_result=True)
def recording_align_task(recording_id: int) -> None:
    from training.worker.aligner import recording_align

    recording_align(recording_id=recording_id)
