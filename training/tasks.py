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


@shared_task(name="training.round_train")
def round_train_task(round_id: int) -> None:
    from training.trainer import round_run

    round_run(round_id=round_id, worker=round_train_task.request.hostname or "")


@shared_task(name="training.score_pool")
def scoring_task(scoring_id: int) -> None:
    from training.scoring import scoring_run

    scoring_run(scoring_id=scoring_id)


@shared_task(name="training.transcribe")
def transcription_task(job_id: int) -> None:
    from training.transcriber import transcription_run

    transcription_run(job_id=job_id)
