"""Round trips through a real Redis and a real `celery worker` process (no eager mode)."""

import pytest
from django.urls import reverse

from training import health
from training.tasks import worker_echo

pytestmark = pytest.mark.celery


@pytest.mark.parametrize("queue", ["default", "gpu"])
def test_a_task_goes_through_redis_to_a_worker_and_back(celery_worker, queue):
    answer = worker_echo.apply_async(args=["k7"], queue=queue).get(timeout=20)
    assert answer == {"token": "k7", "worker": celery_worker.name, "queue": queue}


@pytest.mark.django_db
def test_the_workers_page_shows_both_queues_up(celery_worker, client_for, owner):
    body = client_for(owner).get(reverse("system_status")).content.decode()
    assert body.count('<span class="status ok">up</span>') == 2
    assert celery_worker.name in body


@pytest.mark.django_db
def test_the_workers_page_says_when_redis_is_down(client_for, owner, settings):
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"
    body = client_for(owner).get(reverse("system_status")).content.decode()
    assert "Redis is not reachable at redis://:***@127.0.0.1:1/0" in body
    assert "hunter2" not in body
    assert body.count('<span class="status bad">down</span>') == 2


def test_a_queue_without_worker_is_reported_down(redis_url):
    check = health.queue_check("nobody-listens", timeout=1)
    assert check.ok is False
    assert "No worker answered" in check.detail


@pytest.mark.django_db
def test_a_queued_round_says_whether_a_gpu_worker_is_busy_answers_or_is_missing(
    celery_worker, client_for, owner, project
):
    from django.core.cache import cache
    from django.utils import timezone

    from training.models import TrainingRound

    cache.clear()
    line = client_for(owner).get(reverse("gpu_wait")).content.decode()
    assert f"A worker on the gpu queue answered ({celery_worker.name})" in line

    cache.clear()
    TrainingRound.objects.create(
        project=project, number=1, base="b", status="running", heartbeat_at=timezone.now()
    )
    assert "busy with other work" in health.gpu_wait_reason()
    assert "busy with other work" in health.gpu_wait_reason()  # kept, not asked again


@pytest.mark.django_db
def test_a_queued_round_with_no_gpu_worker_says_to_start_one(only_my_workers, redis_url):
    from django.core.cache import cache

    cache.clear()
    reason = health.gpu_wait_reason()
    assert "No worker on the gpu queue answered within 3 s" in reason
    assert "Scale out" in reason


@pytest.mark.django_db
def test_the_workers_page_counts_a_gpu_worker_busy_with_a_round_as_up(
    only_my_workers, redis_url, client_for, owner, project
):
    from django.utils import timezone

    from training.models import TrainingRound

    only_my_workers(queues="default")  # and nothing answers on gpu: it is "training"
    TrainingRound.objects.create(
        project=project,
        number=1,
        base="b",
        status="running",
        heartbeat_at=timezone.now(),
        worker="gpu@box",
    )
    body = client_for(owner).get(reverse("system_status")).content.decode()
    assert body.count('<span class="status ok">up</span>') == 2
    assert "Busy with a round or scoring." in body and "gpu@box" in body
