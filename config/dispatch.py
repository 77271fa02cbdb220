"""Sending a Celery task once the row it names is committed, without losing the row when
Redis is down: the row is marked with a message the person can act on instead."""

import logging
from collections.abc import Callable

import redis
from django.db import transaction
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

QUEUE_UNREACHABLE = (
    "The task queue (Redis) was unreachable, so no worker got this. "
    "Nothing is lost: press Retry once Redis is back (the Workers page tells)."
)


def dispatch_on_commit(task, *args, on_unreachable: Callable[[str], None]) -> None:
    def send() -> None:
        try:
            task.delay(*args)
        except (OperationalError, redis.RedisError, OSError) as error:
            log.warning("could not queue %s%s: %s", task.name, args, error)
            on_unreachable(QUEUE_UNREACHABLE)

    transaction.on_commit(send)
