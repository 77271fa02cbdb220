"""Rounds through a real Redis and real worker processes: end to end, and a worker killed
in the middle of a round."""

import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeling import queue
from labeling.models import Clip
from tests.conftest import real_speech_dir
from training import rounds
from training.models import ScoringRun, TrainingRound

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def labeled(project, owner, make_clips, settings):
    project.alphabet = "abcdefghijklmnopqrstuvwxyz'"
    project.save()
    call_command(
        "import_manifest",
        str(real_speech_dir() / "manifest.jsonl"),
        project=project.pk,
        user=owner.username,
    )
    imported = list(Clip.objects.filter(project=project).order_by("pk"))
    Clip.objects.filter(pk__in=[c.pk for c in imported[:2]]).update(split="test")
    Clip.objects.filter(pk__in=[c.pk for c in imported[2:4]]).update(split="dev")
    make_clips(project, count=4)
    return project


def test_a_round_end_to_end_changes_the_queue(
    labeled, owner, annotator, client_for, celery_worker, settings
):
    settings.VERNACULAR_ROUND_CONFIG = {
        "max_steps": 6,
        "batch_size": 4,
        "warmup_steps": 1,
        "eval_every": 3,
        "patience": 0,
        "learning_rate": 3e-4,
    }
    labeled.test_minutes_target = labeled.dev_minutes_target = 0
    labeled.save()
    before = queue.clip_lease_next(project=labeled, user=annotator)  # random order: no model yet
    queue.clip_skip(clip=before, user=annotator, lease_token=before.lease_token)
    Clip.objects.filter(pk=before.pk).update(
        lease_user=None, lease_token=None, lease_expires_at=None
    )
    Clip.objects.get(pk=before.pk).skipped_by.clear()

    client = client_for(owner)
    client.post(reverse("round_start", args=[labeled.pk]))
    training_round = TrainingRound.objects.get()
    wait_for(
        lambda: TrainingRound.objects.get().status not in ("queued", "running"), 120, "the round"
    )
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error + training_round.log
    assert training_round.worker == celery_worker.name
    assert training_round.version.promoted
    run = wait_for(lambda: ScoringRun.objects.filter(status="succeeded").first(), 120, "scoring")
    assert run.clips_done == 4
    open_clips = Clip.objects.filter(project=labeled, status="unlabeled")
    assert all(c.selection_score is not None for c in open_clips)
    best = max(open_clips, key=lambda c: c.selection_score)
    assert queue.clip_lease_next(project=labeled, user=annotator).pk == best.pk

    body = client.get(reverse("dashboard", args=[labeled.pk])).content.decode()
    assert '"round": 1' in body and "promoted" in body


def test_a_worker_killed_mid_round_is_noticed_and_the_round_resumes(
    labeled, owner, only_my_workers, settings
):
    start_worker = only_my_workers
    settings.VERNACULAR_ROUND_CONFIG = {
        "max_steps": 60,
        "batch_size": 2,
        "warmup_steps": 1,
        "eval_every": 5,
        "patience": 0,
        "learning_rate": 3e-4,
    }
    settings.VERNACULAR_HEARTBEAT_STALE_SECONDS = 3
    first = start_worker(queues="gpu", name="doomed@localhost")
    training_round = rounds.round_start(project=labeled, user=owner)
    wait_for(lambda: TrainingRound.objects.get().step >= 12, 120, "training to pass a checkpoint")
    first.kill()
    killed_at = TrainingRound.objects.get().step
    assert TrainingRound.objects.get().status == "running"  # nobody said otherwise yet

    time.sleep(settings.VERNACULAR_HEARTBEAT_STALE_SECONDS + 1)
    reaped = rounds.rounds_reap_stale(project=labeled)
    assert [r.pk for r in reaped] == [training_round.pk]
    start_worker(queues="gpu", name="rescuer@localhost")
    wait_for(
        lambda: TrainingRound.objects.get().status not in ("queued", "running"),
        180,
        "the resumed round",
    )
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error + training_round.log
    assert training_round.attempts == 2 and training_round.worker == "rescuer@localhost"
    assert "doomed@localhost stopped answering; resuming" in training_round.log
    assert training_round.step == 60 > killed_at
