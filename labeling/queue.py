"""The annotation queue: lease the next clip, submit, skip, undo, review.

Labels are never lost: a submission is a new Transcript row keyed by the lease it was written
under (a double submit stores one), and every write happens in one transaction with the clip
row locked. Only a submission under the lease its author holds labels the clip; any other (a
late one after someone else took the clip, a stale page, a made-up token) is kept, marked
for review, and leaves the clip where it was: it never makes a clip a training clip that
skipped its test/dev draw.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, TextField, Value, When
from django.utils import timezone

from asr.text import normalize_text
from config.dispatch import dispatch_on_commit
from labeling.models import UNSCORED_LAST, Clip, Project, Recording, Transcript
from labeling.selectors import (
    SplitDraw,
    clip_minutes,
    evaluation_minutes,
    of_evaluation_units,
    split_draw,
)

ACTIVE = (Transcript.Status.SUBMITTED, Transcript.Status.ACCEPTED)
EVALUATION = (Clip.Split.TEST, Clip.Split.DEV)
CLAIM_BATCH = 8  # candidates tried per read
CLAIM_BATCHES = 20  # reads before giving up: 160 claims lost in a row


def _lease_free(now) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def splits_wanted(project: Project, now=None) -> list[str]:
    """The evaluation sets still short of their minutes (labeled or being labeled), in the
    order they are filled: test, then dev."""
    minutes = evaluation_minutes(project, now)
    return [split for split in EVALUATION if minutes[split] < _target(project, split)]


def split_wanted(project: Project, now=None) -> str:
    """The split a newly labeled clip joins: test, then dev, until each has its minutes."""
    return next(iter(splits_wanted(project, now)), Clip.Split.TRAIN)


def _target(project: Project, split: str) -> float:
    if split == Clip.Split.TEST:
        return project.test_minutes_target
    return project.dev_minutes_target


def _drawn_enough(project: Project, split: str) -> bool:
    """Drawn by recording: the recordings already drawn into `split` hold its minutes of
    clips (labeled or not), so it draws no more; their open clips are served first."""
    drawn = Clip.objects.filter(project=project, split=split).exclude(status=Clip.Status.FLAGGED)
    return clip_minutes(drawn) >= _target(project, split)  # a flagged clip never counts


def queue_candidates(
    project: Project, user, now=None, draw: SplitDraw | None = None
) -> tuple[str, list[QuerySet]]:
    """(split the clip joins, candidate querysets to read in turn, each in serving order).

    Random test clips first, then random dev clips, until each reaches its target minutes;
    then the clips the latest scoring run rates most worth labeling; random before any
    scoring run exists. Each queryset's order is an index's order (Clip.Meta.indexes), so
    a lease reads a few rows however many clips are open.
    """
    now = now or timezone.now()
    open_clips = (
        Clip.objects.filter(project=project, status=Clip.Status.UNLABELED)
        .filter(_lease_free(now))
        .exclude(skipped_by=user)
        .exclude(postponed_by=user, postponed_until__gt=now)
    )
    draw = draw or split_draw(project)
    undrawn = open_clips.filter(split=Clip.Split.UNASSIGNED)
    for split in splits_wanted(project, now):
        drawn = open_clips.filter(split=split)
        # Clips drawn for this split earlier but never labeled come first, then undrawn ones.
        if not draw.by_recording:
            return split, [drawn.order_by("random_key"), undrawn.order_by("random_key")]
        # drawn by recording: with them, a later recording of a speaker already in this set
        in_split = _speakers_in(project, [split])
        drawn = drawn | undrawn.filter(recording__speaker__in=in_split)
        candidate_sets = [drawn.order_by("random_key")]
        if not _drawn_enough(project, split):
            # A recording nobody drew yet: one of the shortest, which the draw planned for;
            # where the test set took more of them than planned (whole recordings hold more
            # than its minutes), the shortest of the rest, so dev is never left without one.
            every_split = [Clip.Split.TEST, Clip.Split.DEV, Clip.Split.TRAIN]
            fresh = undrawn.exclude(recording_id__in=_drawn_recordings(project)).exclude(
                recording__speaker__in=_speakers_in(project, every_split)
            )
            planned = fresh.filter(recording_id__in=draw.eligible)
            shortest = fresh.order_by("recording__duration_seconds", "recording_id", "random_key")
            candidate_sets += [planned.order_by("random_key"), shortest]
        if any(candidates.exists() for candidates in candidate_sets):
            return split, candidate_sets
        # nothing of it is free now (its clips are leased) or left to draw: the next set
    pool = open_clips.filter(split__in=[Clip.Split.TRAIN, Clip.Split.UNASSIGNED])
    if draw.by_recording:  # never a clip of a test or dev recording
        pool = pool.exclude(Q(split=Clip.Split.UNASSIGNED) & of_evaluation_units(project))
    return Clip.Split.TRAIN, [
        pool.order_by(UNSCORED_LAST, F("selection_score").desc(), "random_key")
    ]


def clip_lease_next(*, project: Project, user) -> Clip | None:
    """The clip this user should transcribe now, leased to them; None when the queue is empty.

    A user who already holds a live lease gets the same clip back (a reload loses nothing).
    Two users never hold the same clip: each claim is a conditional UPDATE that only one wins.
    """
    now = timezone.now()
    leasable = [Clip.Status.UNLABELED]
    if project.second_listener:
        leasable.append(Clip.Status.SUBMITTED)  # a check: listening to someone's transcript
    held = (
        Clip.objects.filter(
            project=project, status__in=leasable, lease_user=user, lease_expires_at__gte=now
        )
        .select_related("recording")
        .first()
    )
    if held:
        return held
    if project.second_listener and (check := _lease_check(project, user, now)):
        return check
    draw = split_draw(project)  # read once: the candidates and the claim follow the same draw
    split, candidate_sets = queue_candidates(project, user, now, draw)
    lost: list[int] = []

    def next_batch() -> list[int]:
        # The first candidates nobody has been seen to take yet, from the first set that
        # still has any: the sets are read in serving order, and an exhausted one stays so.
        while candidate_sets:
            batch = candidate_sets[0].exclude(pk__in=lost).values_list("pk", flat=True)
            if batch := list(batch[:CLAIM_BATCH]):
                return batch
            candidate_sets.pop(0)
        return []

    # Everyone reads the same top candidates, so under a crowd most claims are lost: after a
    # batch is lost, read the next candidates fresh. Only empty reads mean an empty queue.
    for _ in range(CLAIM_BATCHES):
        batch = next_batch()
        if not batch and not lost and split == Clip.Split.TRAIN:
            return None  # the last set, read with no claim lost since: the queue is empty
        if not batch:
            # Claims were lost meanwhile, or others leased this split's last free clips since
            # it was chosen, or drew a recording into another set: read again from the top
            # (a test or dev set with nothing free falls through to the next one).
            split, fresh = queue_candidates(project, user, now, draw)
            candidate_sets[:] = fresh
            lost.clear()
            continue
        if lost:
            random.shuffle(batch)  # in a crowd: spread it over near-equal candidates
        for clip_id in batch:
            if clip_claim(
                project=project,
                clip_id=clip_id,
                user=user,
                split=split,
                now=now,
                by_recording=draw.by_recording,
            ):
                return Clip.objects.select_related("recording").get(pk=clip_id)
        lost += batch
    return None


def _lease_check(project: Project, user, now) -> Clip | None:
    """Second-listener mode: a clip someone else transcribed, waiting for a second person to
    agree, leased to this user; these come before new clips, so labels count sooner."""
    waiting = Transcript.objects.filter(
        clip=OuterRef("pk"), status=Transcript.Status.SUBMITTED, conflict=False
    )
    candidates = (
        Clip.objects.filter(project=project, status=Clip.Status.SUBMITTED)
        .filter(_lease_free(now), Exists(waiting))
        .exclude(skipped_by=user)
        .exclude(transcripts__author=user)
        .order_by("random_key")
        .values_list("pk", flat=True)
    )
    for clip_id in candidates[:CLAIM_BATCH]:
        claimed = (
            Clip.objects.filter(pk=clip_id, status=Clip.Status.SUBMITTED)
            .filter(_lease_free(now))
            .update(
                lease_user=user,
                lease_token=uuid.uuid4(),
                lease_expires_at=now + timedelta(minutes=project.lease_minutes),
                lease_text="",
            )
        )
        if claimed:
            return Clip.objects.select_related("recording").get(pk=clip_id)
    return None


def clip_claim(
    *, project: Project, clip_id: int, user, split: str, now, by_recording: bool
) -> bool:
    """Lease one open clip to `user`, into `split`; False if someone took it first.

    Drawn by recording, the claim also draws the rest of its recording (and the recordings
    naming the same speaker or session) into that split, in one transaction with those
    recordings locked; and it is refused when any of them was drawn into another set since
    the candidates were read (another annotator's claim in between), so the clips of one
    recording never straddle test/dev and train."""
    claimable = Clip.objects.filter(pk=clip_id, status=Clip.Status.UNLABELED).filter(
        _lease_free(now)
    )
    with transaction.atomic():
        unit: list[int] = []
        if by_recording:
            if split in EVALUATION:  # one draw into test or dev at a time, project-wide
                Project.objects.select_for_update().filter(pk=project.pk).first()
            read = Clip.objects.filter(pk=clip_id).values_list("recording_id", "split").first()
            if read is None:
                return False  # cut again (a boundary edit) since the read
            recording_id, clip_split = read
            if clip_split not in (Clip.Split.UNASSIGNED, split):
                return False  # drawn into another set since the read
            unit = _draw_unit_locked(project, recording_id)
            drawn = _unit_splits(unit)
            if clip_split == Clip.Split.UNASSIGNED and drawn - {split}:
                return False  # its recording or speaker was drawn into another set
            if not drawn and split in EVALUATION and _drawn_enough(project, split):
                return False  # others drew its recordings since this read: take theirs
            claimable = claimable.filter(split__in=[Clip.Split.UNASSIGNED, split])
        claimed = claimable.update(
            lease_user=user,
            lease_token=uuid.uuid4(),
            lease_expires_at=now + timedelta(minutes=project.lease_minutes),
            # A new lease starts empty, except for the one who put the clip off (SET reads
            # the row as it was: postponed_by is cleared in the same update).
            lease_text=Case(
                When(postponed_by=user, then=F("lease_text")),
                default=Value(""),
                output_field=TextField(),
            ),
            postponed_by=None,
            postponed_until=None,
            split=split,
        )
        if claimed and unit:
            Clip.objects.filter(recording_id__in=unit, split=Clip.Split.UNASSIGNED).update(
                split=split
            )
    return bool(claimed)


def pool_clips_draw_for_training(*, project: Project, clip_ids: list[int]) -> set[int]:
    """Self-training's pool clips join the training side. Drawn by recording, each recording
    is locked as a claim locks it, and a clip whose recording (or speaker) was drawn into test
    or dev meanwhile is left out. Returns the ids that are training clips now."""
    by_recording = split_draw(project).by_recording
    of_recording: dict[int, list[int]] = {}
    for pk, recording_id in Clip.objects.filter(pk__in=clip_ids).values_list("pk", "recording_id"):
        of_recording.setdefault(recording_id, []).append(pk)
    kept: set[int] = set()
    for recording_id, ids in sorted(of_recording.items()):
        with transaction.atomic():
            unit = _draw_unit_locked(project, recording_id) if by_recording else []
            if _unit_splits(unit) - {Clip.Split.TRAIN}:
                continue
            Clip.objects.filter(pk__in=ids, split=Clip.Split.UNASSIGNED).update(
                split=Clip.Split.TRAIN
            )
            kept |= set(
                Clip.objects.filter(pk__in=ids, split=Clip.Split.TRAIN).values_list("pk", flat=True)
            )
    return kept


def _draw_unit_locked(project: Project, recording_id: int) -> list[int]:
    """A recording and those naming the same speaker or session: the unit the draw keeps
    together, its rows locked (in id order, so two claims never wait on each other)."""
    speaker = Recording.objects.filter(pk=recording_id).values_list("speaker", flat=True)
    speaker = speaker.first() or ""
    unit = Recording.objects.filter(pk=recording_id)
    if speaker:
        unit = Recording.objects.filter(project=project, speaker=speaker)
    return list(unit.select_for_update().order_by("pk").values_list("pk", flat=True))


def _unit_splits(unit: list[int]) -> set[str]:
    """The sets the clips of these recordings were drawn into (one, or none yet)."""
    drawn = Clip.objects.filter(recording_id__in=unit).exclude(split=Clip.Split.UNASSIGNED)
    return set(drawn.values_list("split", flat=True).distinct())


def _unit_draw(project: Project, recording_id: int, split: str) -> str:
    """The split a recording's unit is in, drawing it into `split` if it has none yet."""
    unit = _draw_unit_locked(project, recording_id)
    drawn = _unit_splits(unit)
    if drawn:
        return next(s for s in (Clip.Split.TEST, Clip.Split.DEV, Clip.Split.TRAIN) if s in drawn)
    Clip.objects.filter(recording_id__in=unit, split=Clip.Split.UNASSIGNED).update(split=split)
    return split


def _speakers_in(project: Project, splits: list[str]) -> QuerySet:
    """The speakers or sessions named by recordings with clips drawn into these sets."""
    return (
        Recording.objects.filter(project=project, clips__split__in=splits)
        .exclude(speaker="")
        .values("speaker")
    )


def _drawn_recordings(project: Project) -> QuerySet:
    return (
        Clip.objects.filter(project=project)
        .exclude(split=Clip.Split.UNASSIGNED)
        .values("recording_id")
    )


@dataclass(frozen=True)
class Submission:
    transcript: Transcript
    created: bool  # False: this lease was already submitted (a double submit)
    conflict: bool  # someone else's transcript for the clip exists too; both are kept
    held: bool = True  # written under the lease its author holds; else it waits for review
    agreed: bool = False  # a second listener wrote what the first did: both count now


@transaction.atomic
def transcript_submit(
    *,
    clip: Clip,
    user,
    lease_token: uuid.UUID,
    text: str,
    flag: str = "",
    seconds_spent: float = 0.0,
) -> Submission:
    clip = Clip.objects.select_for_update().get(pk=clip.pk)
    existing = Transcript.objects.filter(clip=clip, lease_token=lease_token).first()
    if existing and existing.author_id == user.pk:
        return Submission(
            existing,
            created=False,
            conflict=existing.conflict,
            agreed=existing.status == Transcript.Status.ACCEPTED,
        )
    checking = clip.status == Clip.Status.SUBMITTED and clip.lease_token == lease_token
    if checking and clip.lease_user_id == user.pk and clip.project.second_listener:
        submission = _second_listen(clip, user, lease_token, text, flag, seconds_spent)
        if submission.created:
            _round_check_on_commit(clip.project)
        return submission
    # Still the author's lease even when its time ran out, as long as nobody took the clip.
    held = (
        clip.lease_user_id == user.pk
        and clip.lease_token == lease_token
        and clip.status == Clip.Status.UNLABELED
    )
    if not held:
        # Someone else's token, an old one or a made-up one: keep the text, under its own key.
        lease_token = uuid.uuid4()

    others = clip.transcripts.filter(status__in=ACTIVE)
    conflict = others.exists() or not held
    transcript = Transcript.objects.create(
        clip=clip,
        author=user,
        lease_token=lease_token,
        text=text.strip(),
        draft_text=clip.draft_text,
        flag=flag,
        seconds_spent=max(0.0, min(seconds_spent, 3600.0)),
        conflict=conflict,
    )
    if conflict:
        others.update(conflict=True)
    if held:
        # Labeled now, even beside a transcript kept for review: it leaves the queue.
        clip.status = Clip.Status.FLAGGED if flag else Clip.Status.SUBMITTED
        clip.lease_user, clip.lease_token, clip.lease_expires_at = None, None, None
        clip.lease_text = ""
    # Only the fields this owns: a scoring run may be writing the draft and score right now.
    clip.save(
        update_fields=["status", "lease_user", "lease_token", "lease_expires_at", "lease_text"]
    )
    _round_check_on_commit(clip.project)
    return Submission(transcript, created=True, conflict=conflict, held=held)


def _round_check_on_commit(project: Project) -> None:
    """Where the project starts a round every N new labeled minutes: once this label is
    committed, a default-queue worker checks (training.rounds.round_auto_start), off the
    annotator's request. With Redis down no round starts now; the next label checks again."""
    if not project.auto_round_minutes:
        return
    from celery import current_app

    # by name: the task lives in the training app, which imports this one
    task = current_app.signature("training.auto_round")
    dispatch_on_commit(task, project.pk, on_unreachable=lambda why: None)


def _second_listen(
    clip: Clip, user, lease_token, text: str, flag: str, seconds: float
) -> Submission:
    """A second listener's transcript: the same words (as training reads them) accept both;
    other words, or a flag, send both to a reviewer."""
    first = (
        clip.transcripts.filter(status=Transcript.Status.SUBMITTED)
        .exclude(author=user)
        .order_by("-created_at")
        .first()
    )
    rules = Project.objects.get(pk=clip.project_id).text_rules()
    agreed = bool(
        first and not flag and normalize_text(text, rules) == normalize_text(first.text, rules)
    )
    now = timezone.now()
    second = Transcript.objects.create(
        clip=clip,
        author=user,
        lease_token=lease_token,
        text=text.strip(),
        draft_text=first.text if first else "",
        flag=flag,
        seconds_spent=max(0.0, min(seconds, 3600.0)),
        status=Transcript.Status.ACCEPTED if agreed else Transcript.Status.SUBMITTED,
        conflict=not agreed,
        reviewed_by=user if agreed else None,
        reviewed_at=now if agreed else None,
    )
    if agreed:
        Transcript.objects.filter(pk=first.pk).update(
            status=Transcript.Status.ACCEPTED, reviewed_by=user, reviewed_at=now
        )
        clip.status = Clip.Status.ACCEPTED
    else:
        clip.transcripts.filter(status=Transcript.Status.SUBMITTED).update(conflict=True)
    clip.lease_user, clip.lease_token, clip.lease_expires_at = None, None, None
    clip.lease_text = ""
    clip.save(
        update_fields=["status", "lease_user", "lease_token", "lease_expires_at", "lease_text"]
    )
    return Submission(second, created=True, conflict=not agreed, agreed=agreed)


@transaction.atomic
def clip_skip(*, clip: Clip, user, lease_token: uuid.UUID) -> None:
    """Gives the clip back to the queue, and never serves it to this user again."""
    clip = Clip.objects.select_for_update().get(pk=clip.pk)
    if clip.lease_token == lease_token and clip.lease_user_id == user.pk:
        clip.lease_user, clip.lease_token, clip.lease_expires_at = None, None, None
        clip.lease_text = ""
        clip.save(update_fields=["lease_user", "lease_token", "lease_expires_at", "lease_text"])
    clip.skipped_by.add(user)


LATER_MINUTES = 30


@transaction.atomic
def clip_postpone(*, clip: Clip, user, lease_token: uuid.UUID) -> None:
    """ "Later": gives the clip back to the queue, and serves it to this user again only after
    LATER_MINUTES (others may take it meanwhile). What they typed stays with the clip."""
    updated = Clip.objects.filter(
        pk=clip.pk, lease_user=user, lease_token=lease_token, status=Clip.Status.UNLABELED
    ).update(
        lease_user=None,
        lease_token=None,
        lease_expires_at=None,
        postponed_by=user,
        postponed_until=timezone.now() + timedelta(minutes=LATER_MINUTES),
    )
    if not updated:
        raise ValidationError("This clip is no longer yours: nothing to put off.")


def lease_text_save(*, clip: Clip, user, lease_token: uuid.UUID, text: str) -> bool:
    """Keep what the lease holder has typed so far; False if the lease is no longer theirs."""
    return bool(
        Clip.objects.filter(
            pk=clip.pk, lease_user=user, lease_token=lease_token, status=Clip.Status.UNLABELED
        ).update(lease_text=text[:MAX_UNSENT_CHARACTERS])
    )


MAX_UNSENT_CHARACTERS = 10_000


def _settle_conflicts(clip: Clip) -> None:
    """A disagreement ends when a single transcript of the clip still stands."""
    standing = clip.transcripts.filter(status__in=ACTIVE)
    if standing.count() == 1:
        standing.update(conflict=False)


@transaction.atomic
def transcript_undo_last(*, project: Project, user) -> tuple[Clip, Transcript]:
    """Withdraws the user's latest unreviewed submission and leases its clip back to them."""
    last = (
        Transcript.objects.filter(clip__project=project, author=user)
        .order_by("-created_at", "-pk")
        .first()
    )
    if last is None or last.status != Transcript.Status.SUBMITTED:
        raise ValidationError("There is no submission of yours to undo (reviewed ones stay).")
    # Clip first, then its transcripts: the same lock order as submit and review.
    clip = Clip.objects.select_for_update().get(pk=last.clip_id)
    last = Transcript.objects.select_for_update().get(pk=last.pk)
    if last.status != Transcript.Status.SUBMITTED:
        raise ValidationError("A reviewer took this transcript just now; it stays as it is.")
    now = timezone.now()
    if (
        clip.lease_user_id not in (None, user.pk)
        and clip.lease_expires_at
        and clip.lease_expires_at > now
    ):
        raise ValidationError("Someone else has this clip open right now; your transcript stays.")
    last.status = Transcript.Status.WITHDRAWN
    last.conflict = False
    last.save(update_fields=["status", "conflict"])
    _settle_conflicts(clip)
    if not clip.transcripts.filter(status__in=ACTIVE).exists():
        clip.status = Clip.Status.UNLABELED
    clip.lease_user = user
    clip.lease_token = uuid.uuid4()
    clip.lease_expires_at = now + timedelta(minutes=project.lease_minutes)
    clip.lease_text = ""  # the undone text comes back as the box's prefill
    clip.save(
        update_fields=["status", "lease_user", "lease_token", "lease_expires_at", "lease_text"]
    )
    return clip, last


@transaction.atomic
def transcript_edit_own(*, transcript: Transcript, user, text: str) -> Transcript:
    """An annotator's new version of one of their earlier transcripts: a new row (`edit_of`
    the one it replaces, which is kept, superseded); a reviewed one is then reviewed again."""
    clip = Clip.objects.select_for_update().get(pk=transcript.clip_id)
    transcript = Transcript.objects.select_for_update().get(pk=transcript.pk)
    if transcript.author_id != user.pk:
        raise ValidationError("Only its author edits a transcript here; reviewers edit in Review.")
    if transcript.status not in ACTIVE:
        raise ValidationError("This version no longer stands (undone, rejected or replaced).")
    if transcript.conflict or clip.status not in (Clip.Status.SUBMITTED, Clip.Status.ACCEPTED):
        raise ValidationError(
            "This one waits for a reviewer beside another version; it stays as it is."
        )
    text = text.strip()
    if text == transcript.text and not transcript.flag:
        return transcript
    transcript.status = Transcript.Status.SUPERSEDED
    transcript.save(update_fields=["status"])
    others = clip.transcripts.filter(status__in=ACTIVE)
    edited = Transcript.objects.create(
        clip=clip,
        author=user,
        lease_token=uuid.uuid4(),
        text=text,
        draft_text=transcript.text,
        conflict=others.exists(),
        edit_of=transcript,
    )
    if edited.conflict:
        others.update(conflict=True)
    clip.status = Clip.Status.SUBMITTED
    clip.save(update_fields=["status"])
    return edited


@transaction.atomic
def transcript_review(
    *, transcript: Transcript, reviewer, action: str, text: str = ""
) -> Transcript:
    """Accept (as it is, or with the reviewer's edit) or reject a submitted transcript.

    An edit is stored as the reviewer's own accepted transcript (`edit_of` the original);
    the annotator's original stays, marked superseded. A rejected clip goes back to the
    queue unless another transcript of it is still standing.
    """
    project_id, recording_id, split = Clip.objects.values_list(
        "project_id", "recording_id", "split"
    ).get(pk=transcript.clip_id)
    if split == Clip.Split.UNASSIGNED:
        # An accept may draw its recording into a set: lock as a claim does (the project, the
        # recordings, then clips), so the two never wait on each other.
        project = Project.objects.select_for_update().get(pk=project_id)
        _draw_unit_locked(project, recording_id)
    # Clip first, then its transcripts: the same lock order as submit and undo.
    clip = Clip.objects.select_for_update().get(pk=transcript.clip_id)
    transcript = Transcript.objects.select_for_update().get(pk=transcript.pk)
    if transcript.status != Transcript.Status.SUBMITTED:
        raise ValidationError("Someone reviewed this transcript already.")
    now = timezone.now()
    text = text.strip()
    if action == "reject":
        transcript.status = Transcript.Status.REJECTED
    elif text and text != transcript.text:
        transcript.status = Transcript.Status.SUPERSEDED
        Transcript.objects.create(
            clip=clip,
            author=reviewer,
            lease_token=uuid.uuid4(),
            text=text,
            draft_text=transcript.text,
            status=Transcript.Status.ACCEPTED,
            reviewed_by=reviewer,
            reviewed_at=now,
            edit_of=transcript,
        )
    else:
        transcript.status = Transcript.Status.ACCEPTED
    transcript.reviewed_by, transcript.reviewed_at = reviewer, now
    transcript.conflict = False
    transcript.save()

    standing = clip.transcripts.filter(status__in=ACTIVE)
    if action == "accept":
        # The reviewer settled any disagreement: the other submissions no longer stand.
        standing.filter(status=Transcript.Status.SUBMITTED).update(
            status=Transcript.Status.SUPERSEDED, conflict=False
        )
        clip.status = Clip.Status.FLAGGED if transcript.flag else Clip.Status.ACCEPTED
        if clip.split == Clip.Split.UNASSIGNED:
            # Labeled without a lease (kept for review): it takes its turn in the draw, on
            # the training side where its recording could not join test or dev.
            draw = split_draw(clip.project)
            clip.split = split_wanted(clip.project, now)
            if draw.by_recording and clip.recording_id not in draw.eligible:
                clip.split = Clip.Split.TRAIN
            if draw.by_recording:
                clip.split = _unit_draw(clip.project, clip.recording_id, clip.split)
    elif not standing.exists():
        clip.status = Clip.Status.UNLABELED
    _settle_conflicts(clip)
    clip.save(update_fields=["status", "split"])
    return transcript
