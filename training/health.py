"""Health of the task machinery: Redis, one live worker per queue, and why a queued round
waits. Reads and pings only; the writes of the training app live in rounds.py, exports.py
and transcription.py."""

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from kombu.exceptions import OperationalError

from training.tasks import worker_echo

# ingest and light work on "default"; training and scoring on "gpu" (solo pool).
QUEUES = ("default", "gpu")


@dataclass(frozen=True)
class QueueCheck:
    queue: str
    ok: bool
    detail: str
    worker: str = ""
    millis: int | None = None


def redis_url_for_display(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def redis_check(url: str | None = None) -> str | None:
    """None when Redis answers, else a sentence saying what is wrong."""
    url = url or settings.REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as error:
        return f"Redis is not reachable at {redis_url_for_display(url)} ({error})."
    return None


def queue_check(queue: str, *, timeout: float = 5.0) -> QueueCheck:
    token = secrets.token_hex(4)
    started = time.monotonic()
    try:
        # expires: a check nobody answered must not wait in the queue behind a long round.
        result = worker_echo.apply_async(args=[token], queue=queue, expires=timeout)
        answer = result.get(timeout=timeout)
    except CeleryTimeout:
        return QueueCheck(queue, False, f"No worker answered within {timeout:.0f} s.")
    except (OperationalError, redis.RedisError) as error:
        return QueueCheck(queue, False, f"Could not reach Redis ({error}).")
    except RuntimeError:
        # Celery's result consumer gives up this way when Redis went away mid-wait.
        return QueueCheck(queue, False, "Lost the connection to Redis while waiting.")
    millis = round((time.monotonic() - started) * 1000)
    if answer.get("token") != token:
        return QueueCheck(queue, False, "A worker answered with the wrong token.")
    return QueueCheck(queue, True, "Answered.", worker=answer["worker"], millis=millis)


def workers_check(*, timeout: float = 5.0) -> tuple[str | None, list[QueueCheck]]:
    redis_error = redis_check()
    if redis_error:
        return redis_error, [QueueCheck(q, False, "Redis is down.") for q in QUEUES]
    checks = []
    for queue in QUEUES:
        check = queue_check(queue, timeout=timeout)
        busy = busy_gpu_worker() if queue == "gpu" and not check.ok else None
        if busy is not None:  # the solo pool answers nothing while it trains: alive, busy
            check = QueueCheck(queue, True, "Busy with a round or scoring.", worker=busy)
        checks.append(check)
    return None, checks


def busy_gpu_worker() -> str | None:
    """The worker of a round or scoring run whose heartbeat is fresh, if any ("" if it did
    not say its name): a gpu worker is alive and busy."""
    from training.models import ScoringRun, TrainingRound

    fresh = timezone.now() - timedelta(seconds=BUSY_HEARTBEAT)
    running = TrainingRound.objects.filter(status="running", heartbeat_at__gte=fresh).first()
    if running:
        return running.worker
    if ScoringRun.objects.filter(status="running", heartbeat_at__gte=fresh).exists():
        return ""
    return None


WAIT_CHECK_SECONDS = 3.0
WAIT_CHECK_KEPT = 15  # seconds a finding is reused: the dashboard asks every 2 s
BUSY_HEARTBEAT = 60  # seconds: a running task whose heartbeat is this fresh holds its worker


def gpu_wait_reason() -> str:
    """Why a queued round waits, in a line: a worker on the gpu queue is busy with other
    work (a heartbeat says so), one answered just now, or none answered."""
    kept = cache.get("gpu-wait-reason")
    if kept:
        return kept
    redis_error = redis_check()
    if redis_error:
        reason = f"{redis_error} No round starts until it answers again."
    elif busy_gpu_worker() is not None:
        reason = (
            "A worker on the gpu queue is busy with other work (a round or scoring); this "
            "round is next in line."
        )
    else:
        check = queue_check("gpu", timeout=WAIT_CHECK_SECONDS)
        if check.ok:
            reason = f"A worker on the gpu queue answered ({check.worker}): it starts shortly."
        else:
            reason = (
                f"No worker on the gpu queue answered within {WAIT_CHECK_SECONDS:.0f} s, and "
                "none is busy with a round: start one (README, “Scale out”). "
                f"{check.detail}"
            )
    cache.set("gpu-wait-reason", reason, WAIT_CHECK_KEPT)
    return reason
