"""Boundary edits from the transcription page: move a clip's start or end, split it at a point,
merge it with the next clip. The audio is cut again from the recording.

Only the clip an annotator holds the lease on, still unlabeled, can be edited (and, to merge,
the next clip of the same recording if nobody else holds it): a labeled clip's text stays with
the audio it was written for. An edit replaces clips by new ones in one transaction, with the
same split (an edit never moves audio between the test, dev and training sides), the lease
(so the text in the box and its unsent copy stay with it) and any transcript rows they had
(undone or waiting for review). The old spans are kept in a ClipEdit row.
"""

import uuid

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from asr.audio import AudioError, read_window, wav_bytes
from labeling.ingest import clip_seconds_add, stored_audio_path
from labeling.models import SAMPLE_RATE, Clip, ClipEdit, Recording, Transcript

MIN_SECONDS = 0.3
MAX_SECONDS = 30.0  # longer clips are slow to transcribe and skipped in training (20 s)
MERGE_GAP_SECONDS = 3.0  # the next clip is the next one of the recording, this close
CONTEXT_SECONDS = 2.0  # of the recording on each side of the clip, on the waveform


def context_span(clip: Clip) -> tuple[int, int]:
    """The samples of the recording the waveform shows: the clip and some on each side."""
    context = round(CONTEXT_SECONDS * SAMPLE_RATE)
    recording_samples = round(clip.recording.duration_seconds * SAMPLE_RATE)
    return max(clip.start_sample - context, 0), min(clip.end_sample + context, recording_samples)


def _held(clip: Clip, user, lease_token: uuid.UUID) -> Clip:
    """The clip, locked, if `user` holds its lease, it is unlabeled and no transcript of it
    waits for review (its text belongs to this audio); else why not. Its recording is locked
    first: two edits of neighbouring clips are checked against each other one at a time."""
    recording_id = Clip.objects.filter(pk=clip.pk).values_list("recording_id", flat=True).first()
    if recording_id is None:
        raise ValidationError("This clip was cut again meanwhile: reload for the new one.")
    Recording.objects.select_for_update().get(pk=recording_id)
    clip = Clip.objects.select_for_update().select_related("recording", "project").get(pk=clip.pk)
    if clip.status != Clip.Status.UNLABELED:
        raise ValidationError("This clip is labeled already: its boundaries stay as they are.")
    if clip.lease_user_id != user.pk or clip.lease_token != lease_token:
        raise ValidationError("This clip is no longer yours to edit: reload for the next one.")
    if _waiting(clip):
        raise ValidationError(
            "A transcript of this clip waits for a reviewer: its boundaries stay until then."
        )
    return clip


def _waiting(clip: Clip) -> bool:
    return clip.transcripts.filter(
        status__in=[Transcript.Status.SUBMITTED, Transcript.Status.ACCEPTED]
    ).exists()


def _check_span(clip: Clip, start: int, end: int, replaced: list[int]) -> None:
    recording_samples = round(clip.recording.duration_seconds * SAMPLE_RATE)
    if start < 0 or end > recording_samples:
        raise ValidationError("The recording ends there: a clip cannot reach past it.")
    if end - start < MIN_SECONDS * SAMPLE_RATE:
        raise ValidationError(f"A clip needs at least {MIN_SECONDS:g} s.")
    if end - start > MAX_SECONDS * SAMPLE_RATE:
        raise ValidationError(f"A clip may last at most {MAX_SECONDS:g} s.")
    overlapping = (
        Clip.objects.filter(recording=clip.recording, start_sample__lt=end, end_sample__gt=start)
        .exclude(pk__in=replaced)
        .exists()
    )
    if overlapping:
        raise ValidationError(
            "That would overlap the next (or previous) clip: merge with it instead, or move "
            "its boundary first."
        )


def _cut(clip: Clip, spans: list[tuple[int, int]]) -> list[bytes]:
    """Each span's audio from the recording, as WAV files; read before any row changes."""
    try:
        with stored_audio_path(clip.recording.audio) as path:
            return [wav_bytes(read_window(path, start, end)) for start, end in spans]
    except AudioError as error:
        raise ValidationError(
            f"{clip.recording.original_name} could not be read again to cut the clip."
        ) from error


def _replace(
    kind: str, user, old: list[Clip], spans: list[tuple[int, int]], audio: list[bytes]
) -> list[Clip]:
    """New clips for `spans` in place of `old`: the first new one keeps the lease and any
    transcript rows the old ones had."""
    first = old[0]
    edit = ClipEdit.objects.create(
        project_id=first.project_id,
        recording_id=first.recording_id,
        kind=kind,
        old_clip_ids=[c.pk for c in old],
        old_spans=[[c.start_sample, c.end_sample] for c in old],
        split=first.split,
        user=user,
    )
    # A start is unique per recording, and a new clip may keep an old one's: the old rows
    # step aside (a negative start no clip has) until their transcripts have moved.
    for clip in old:
        Clip.objects.filter(pk=clip.pk).update(start_sample=-clip.pk)
    new: list[Clip] = []
    for index, ((start, end), wav) in enumerate(zip(spans, audio, strict=True)):
        clip = Clip(
            project_id=first.project_id,
            recording_id=first.recording_id,
            start_sample=start,
            end_sample=end,
            split=first.split,
        )
        if index == 0:
            clip.random_key = first.random_key
            clip.lease_user_id, clip.lease_token = first.lease_user_id, first.lease_token
            clip.lease_expires_at, clip.lease_text = first.lease_expires_at, first.lease_text
        name = f"clips/{first.project_id}/{first.recording_id}/{start}-{end}.wav"
        clip.audio.save(name, ContentFile(wav), save=True)
        new.append(clip)
    Transcript.objects.filter(clip__in=old).update(clip=new[0])
    stored = [c.audio.name for c in old]
    Clip.objects.filter(pk__in=[c.pk for c in old]).delete()
    cut = sum(end - start for start, end in spans) - sum(c.end_sample - c.start_sample for c in old)
    clip_seconds_add(first.recording_id, cut)
    edit.new_clip_ids = [c.pk for c in new]
    edit.save(update_fields=["new_clip_ids"])
    transaction.on_commit(lambda: [default_storage.delete(name) for name in stored])
    return new


@transaction.atomic
def clip_reshape(*, clip: Clip, user, lease_token: uuid.UUID, start: int, end: int) -> Clip:
    """The clip with its start and end moved (samples in the recording)."""
    clip = _held(clip, user, lease_token)
    if (start, end) == (clip.start_sample, clip.end_sample):
        return clip
    _check_span(clip, start, end, [clip.pk])
    return _replace(
        ClipEdit.Kind.RESHAPE, user, [clip], [(start, end)], _cut(clip, [(start, end)])
    )[0]


@transaction.atomic
def clip_split(*, clip: Clip, user, lease_token: uuid.UUID, at: int) -> tuple[Clip, Clip]:
    """The clip cut in two at `at` (samples in the recording); the first half stays yours,
    the second goes back to the queue."""
    clip = _held(clip, user, lease_token)
    spans = [(clip.start_sample, at), (at, clip.end_sample)]
    if not clip.start_sample < at < clip.end_sample:
        raise ValidationError("Split where the clip plays: put the play position inside it.")
    if min(end - start for start, end in spans) < MIN_SECONDS * SAMPLE_RATE:
        raise ValidationError(f"Each half needs at least {MIN_SECONDS:g} s.")
    first, second = _replace(ClipEdit.Kind.SPLIT, user, [clip], spans, _cut(clip, spans))
    return first, second


@transaction.atomic
def clip_merge_next(*, clip: Clip, user, lease_token: uuid.UUID) -> Clip:
    """The clip joined with the next clip of its recording (and the pause between them)."""
    clip = _held(clip, user, lease_token)
    following = (
        Clip.objects.select_for_update()
        .filter(recording=clip.recording, start_sample__gte=clip.end_sample)
        .order_by("start_sample")
        .first()
    )
    if (
        following is None
        or following.start_sample - clip.end_sample > MERGE_GAP_SECONDS * SAMPLE_RATE
    ):
        raise ValidationError("No clip follows this one closely in its recording.")
    if following.status != Clip.Status.UNLABELED or _waiting(following):
        raise ValidationError("The next clip is labeled already: merging would lose its text.")
    if following.split != clip.split:
        raise ValidationError(
            "The next clip is in another set (test, dev or training): they stay apart."
        )
    # Even a lease that ran out: its holder may still send what they typed.
    if following.lease_user_id not in (None, user.pk):
        raise ValidationError("Someone is transcribing the next clip right now.")
    span = (clip.start_sample, following.end_sample)
    _check_span(clip, *span, [clip.pk, following.pk])
    return _replace(ClipEdit.Kind.MERGE, user, [clip, following], [span], _cut(clip, [span]))[0]
