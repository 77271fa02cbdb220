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
