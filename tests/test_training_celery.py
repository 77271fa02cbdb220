"""Rounds through a real Redis and real worker processes: end to end, and a worker killed
in the middle of a round."""

import time

import pytest
from django.urls import reverse

from labeling import queue
from labeling.models import Clip
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
def labeled(project, labeled_speech):
    project.alphabet = "abcdefghijklmnopqrstuvwxyz'"
    project.save()
    return labeled_speech(project)


def test_upload_ingest_label_round_rescore_end_to_end(
    project, owner, annotator, client_for, celery_worker, settings, speech_recording
):
    settings.VERNACULAR_ROUND_CONFIG = {
        "max_steps": 6,
        "batch_size": 4,
        "warmup_steps": 1,
        "eval_every": 3,
        "patience": 0,
        "learning_rate": 3e-4,
        "recovery_attempts": 0,  # a six-step tiny model collapses by design
    }
    project.alphabet = "abcdefghijklmnopqrstuvwxyz'"
    project.test_minutes_target = 5 / 60  # two clips or so, then one for dev
    project.dev_minutes_target = 2 / 60
    project.save()
    manager = client_for(owner)
    with speech_recording.open("rb") as handle:
        manager.post(reverse("recording_upload", args=[project.pk]), {"files": [handle]})
    wait_for(lambda: project.recordings.filter(status="ready").exists(), 120, "ingest")
    assert project.clips.count() >= 8

    labeler = client_for(annotator)
    for _ in range(6):  # test, dev, then training clips, as the queue serves them
        clip = queue.clip_lease_next(project=project, user=annotator)
        labeler.post(
            reverse("annotate_submit", args=[project.pk, clip.pk]),
            {"lease_token": clip.lease_token, "text": "he was not an ill disposed young man"},
        )
    splits = set(project.clips.exclude(status="unlabeled").values_list("split", flat=True))
    assert splits == {"test", "dev", "train"}

    manager.post(reverse("round_start", args=[project.pk]))
    wait_for(
        lambda: TrainingRound.objects.get().status not in ("queued", "running"), 120, "the round"
    )
    training_round = TrainingRound.objects.get()
    assert training_round.status == "succeeded", training_round.error + training_round.log
    assert training_round.worker == celery_worker.name
    assert training_round.version.promoted and training_round.version.test_cer is not None
    run = wait_for(lambda: ScoringRun.objects.filter(status="succeeded").first(), 120, "scoring")
    open_clips = list(Clip.objects.filter(project=project, status="unlabeled"))
    assert run.clips_done == len(open_clips) > 0
    assert all(c.selection_score is not None for c in open_clips)
    best = max(open_clips, key=lambda c: c.selection_score)
    served = queue.clip_lease_next(project=project, user=annotator)
    assert served.pk == best.pk  # the scoring run now decides the order
    assert served.split == "train"

    body = manager.get(reverse("dashboard", args=[project.pk])).content.decode()
    assert '"round": 1' in body and "promoted" in body


def test_a_worker_killed_mid_round_is_noticed_and_the_round_resumes(
    labeled, owner, only_my_workers, settings
):
    start_worker = only_my_workers
    settings.VERNACULAR_ROUND_CONFIG = {
        "max_steps": 400,
        "batch_size": 4,
        "warmup_steps": 1,
        "eval_every": 25,
        "patience": 0,
        "learning_rate": 3e-4,
        "recovery_attempts": 0,  # a six-step tiny model collapses by design
    }
    settings.VERNACULAR_HEARTBEAT_STALE_SECONDS = 3
    first = start_worker(queues="gpu", name="doomed@localhost")
    training_round = rounds.round_start(project=labeled, user=owner)
    wait_for(lambda: TrainingRound.objects.get().step >= 30, 120, "training to pass a checkpoint")
    first.kill()
    killed_at = TrainingRound.objects.get().step
    assert TrainingRound.objects.get().status == "running"  # nobody said otherwise yet
    checkpoint = (
        settings.VERNACULAR_MODEL_DIR / f"project-{labeled.pk}" / "round-1" / "checkpoint.pt"
    )
    assert checkpoint.is_file()  # what the next worker resumes from

    time.sleep(settings.VERNACULAR_HEARTBEAT_STALE_SECONDS + 1)
    reaped = rounds.rounds_reap_stale(project=labeled)
    assert [r.pk for r in reaped] == [training_round.pk]
    start_worker(queues="gpu", name="rescuer@localhost", wait=False)
    wait_for(
        lambda: TrainingRound.objects.get().status not in ("queued", "running"),
        600,
        "the resumed round",
    )
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error + training_round.log
    assert training_round.attempts == 2 and training_round.worker == "rescuer@localhost"
    assert "doomed@localhost stopped answering; resuming" in training_round.log
    assert training_round.step == 400 > killed_at


def test_the_beat_schedule_reaps_a_dead_workers_round_with_no_page_open(
    project, owner, only_my_workers
):
    from datetime import timedelta

    from django.utils import timezone

    quiet_since = timezone.now() - timedelta(minutes=10)
    dead = TrainingRound.objects.create(
        project=project,
        number=1,
        base="builtin:tiny",
        status="running",
        attempts=3,  # its last attempt: reaping fails it for good rather than queueing it
        worker="gone@localhost",
        heartbeat_at=quiet_since,
        started_at=quiet_since,
    )
    only_my_workers(
        queues="default",
        name="beat@localhost",
        beat=True,
        env={"VERNACULAR_REAP_SECONDS": "1", "VERNACULAR_HEARTBEAT_STALE_SECONDS": "5"},
    )

    wait_for(lambda: TrainingRound.objects.get().status == "failed", 60, "the beat to reap it")

    dead.refresh_from_db()
    assert "stopped answering several times" in dead.error
    assert "worker gone@localhost stopped answering; giving up." in dead.log


def test_a_label_past_the_projects_auto_round_minutes_starts_a_round_after_it_commits(
    labeled, annotator, client_for, celery_worker, settings
):
    settings.VERNACULAR_ROUND_CONFIG = {**settings.VERNACULAR_ROUND_CONFIG, "max_steps": 2}
    labeled.auto_round_minutes = 0.01
    labeled.save()
    clip = queue.clip_lease_next(project=labeled, user=annotator)

    client_for(annotator).post(
        reverse("annotate_submit", args=[labeled.pk, clip.pk]),
        {"lease_token": clip.lease_token, "text": "he was not an ill disposed young man"},
        headers={"HX-Request": "true"},
    )

    started = wait_for(lambda: TrainingRound.objects.first(), 60, "the worker's auto round")
    assert started.created_by is None  # nobody pressed a button: the worker started it
    assert started.labeled_minutes > 0
