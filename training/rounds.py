"""Training rounds, the web side: start, cancel, and notice rounds whose worker died.

No torch here: the web server and the ingest workers never load it. The gpu worker's side
is training/worker/trainer.py.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from asr import recipe
from config.dispatch import dispatch_on_commit
from labeling.models import Project
from labeling.selectors import labeled_set
from training.models import ModelVersion, ScoringRun, TrainingRound
from training.selectors import labeled_minutes, project_base, promoted_version
from training.tasks import round_train_task, scoring_task

# --- starting, cancelling, reaping (web side) ------------------------------------------------


def round_config(base: str, train_minutes: float = 0.0, **project_settings) -> dict:
    """A round's settings (asr.recipe's table, the same the simulation reads), with the
    operator's VERNACULAR_ROUND_CONFIG and the project's settings on top."""
    return recipe.round_config(
        base, train_minutes, {**settings.VERNACULAR_ROUND_CONFIG, **project_settings}
    )


def round_start(*, project: Project, user) -> TrainingRound:
    """Snapshots the labeled set and queues a round. Refuses a second active round."""
    rounds_reap_stale(project=project)
    labeled = labeled_set(project)
    splits: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    seconds = train_seconds = 0.0
    for transcript in labeled:
        clip = transcript.clip
        split = clip.split if clip.split in ("dev", "test") else "train"
        splits[split].append(clip.pk)
        seconds += clip.duration_seconds
        train_seconds += clip.duration_seconds if split == "train" else 0.0
    if not splits["train"]:
        raise ValidationError(
            "Nothing to train on yet: label some clips first (the first ones go to the test "
            "and dev sets, which are never trained on)."
        )
    base = project_base(project)
    promoted = promoted_version(project)
    if project.train_from_promoted and promoted:
        base = TrainingRound.continuing(promoted.round.number)
    number = (project.rounds.aggregate(n=Max("number"))["n"] or 0) + 1
    try:
        with transaction.atomic():
            training_round = TrainingRound.objects.create(
                project=project,
                number=number,
                base=base,
                train_clip_ids=splits["train"],
                dev_clip_ids=splits["dev"],
                test_clip_ids=splits["test"],
                labeled_minutes=seconds / 60,
                train_minutes=train_seconds / 60,
                config=round_config(
                    project_base(project),
                    train_seconds / 60,
                    self_train=project.self_training,
                ),
                created_by=user,
            )
    except IntegrityError as error:
        raise ValidationError("A round is already queued or running for this project.") from error
    _send(training_round)
    return training_round


def _send(training_round: TrainingRound) -> None:
    round_id = training_round.pk

    def unreachable(why: str) -> None:
        TrainingRound.objects.filter(pk=round_id, status__in=TrainingRound.ACTIVE).update(
            status=TrainingRound.Status.FAILED, error=why, finished_at=timezone.now()
        )

    dispatch_on_commit(round_train_task, round_id, on_unreachable=unreachable)


def round_retry(*, training_round: TrainingRound) -> bool:
    """Queues a failed round again, from the snapshot it took; False if it is not failed.

    Its attempts start over: a person decided to try again (Redis is back, the worker has
    more memory). The database still refuses it while another round is active.
    """
    try:
        with transaction.atomic():
            updated = TrainingRound.objects.filter(
                pk=training_round.pk, status=TrainingRound.Status.FAILED
            ).update(
                status=TrainingRound.Status.QUEUED,
                error="",
                attempts=0,
                finished_at=None,
                cancel_requested=False,
            )
    except IntegrityError as error:
        raise ValidationError("Another round is queued or running for this project.") from error
    if updated:
        round_log(training_round.pk, f"{timezone.now():%H:%M:%S} queued again by a manager.")
        _send(training_round)
    return bool(updated)


def round_cancel(*, training_round: TrainingRound) -> None:
    # A queued round stops now; a running one at its next step (the worker checks).
    TrainingRound.objects.filter(pk=training_round.pk, status=TrainingRound.Status.QUEUED).update(
        status=TrainingRound.Status.CANCELLED, finished_at=timezone.now()
    )
    TrainingRound.objects.filter(pk=training_round.pk, status=TrainingRound.Status.RUNNING).update(
        cancel_requested=True
    )


def rounds_reap_stale(*, project: Project) -> list[TrainingRound]:
    """Running rounds whose worker went quiet: queued again to resume, or failed for good."""
    limit = timezone.now() - timedelta(seconds=settings.VERNACULAR_HEARTBEAT_STALE_SECONDS)
    # A scoring run is cheap to redo: the next promoted model scores again.
    project.scoring_runs.filter(status=ScoringRun.Status.RUNNING, heartbeat_at__lt=limit).update(
        status=ScoringRun.Status.FAILED,
        error="The worker stopped answering; the next round scores the pool again.",
        finished_at=timezone.now(),
    )
    reaped = []
    stale = project.rounds.filter(status=TrainingRound.Status.RUNNING, heartbeat_at__lt=limit)
    for training_round in stale:
        gave_up = training_round.attempts >= settings.VERNACULAR_ROUND_MAX_ATTEMPTS
        note = f"{timezone.now():%H:%M:%S} worker {training_round.worker} stopped answering; " + (
            "giving up.\n" if gave_up else "resuming from the last checkpoint.\n"
        )
        if gave_up:
            changes = {
                "status": TrainingRound.Status.FAILED,
                "error": "The worker stopped answering several times (killed, or out of memory?).",
                "finished_at": timezone.now(),
            }
        else:
            changes = {"status": TrainingRound.Status.QUEUED}
        # Conditional on the stale heartbeat: two pages reaping at once change it once.
        updated = TrainingRound.objects.filter(
            pk=training_round.pk,
            status=TrainingRound.Status.RUNNING,
            heartbeat_at=training_round.heartbeat_at,
        ).update(**changes)
        if updated:
            round_log(training_round.pk, note)
            if not gave_up:
                _send(training_round)
            reaped.append(training_round)
    return reaped


def rounds_reap_all() -> int:
    """rounds_reap_stale for every project with a quiet round or scoring run: what the beat
    schedule runs every minute, so a dead worker's round is noticed with no page open."""
    limit = timezone.now() - timedelta(seconds=settings.VERNACULAR_HEARTBEAT_STALE_SECONDS)
    quiet = Q(rounds__status=TrainingRound.Status.RUNNING, rounds__heartbeat_at__lt=limit) | Q(
        scoring_runs__status=ScoringRun.Status.RUNNING, scoring_runs__heartbeat_at__lt=limit
    )
    projects = Project.objects.filter(quiet).distinct()
    return sum(len(rounds_reap_stale(project=project)) for project in projects)


def round_log(round_id: int, line: str) -> None:
    # Appended in SQL: the reaper and the worker may both write at once.
    line = line if line.endswith("\n") else line + "\n"
    TrainingRound.objects.filter(pk=round_id).update(log=Concat(F("log"), Value(line)))


def scoring_queue(*, version: ModelVersion) -> ScoringRun:
    run = ScoringRun.objects.create(project=version.project, model_version=version)

    def unreachable(why: str) -> None:
        ScoringRun.objects.filter(pk=run.pk).update(status=ScoringRun.Status.FAILED, error=why)

    dispatch_on_commit(scoring_task, run.pk, on_unreachable=unreachable)
    return run


def round_auto_start(*, project: Project) -> TrainingRound | None:
    """Starts a round when the project asks for one every N new labeled minutes."""
    if (
        not project.auto_round_minutes
        or project.rounds.filter(status__in=TrainingRound.ACTIVE).exists()
    ):
        return None
    minutes = labeled_minutes(project)
    last = project.rounds.exclude(status=TrainingRound.Status.CANCELLED).first()
    if minutes - (last.labeled_minutes if last else 0.0) < project.auto_round_minutes:
        return None
    try:
        return round_start(project=project, user=None)
    except ValidationError:
        return None  # nothing trainable yet, or another request started one just now
