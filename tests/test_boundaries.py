"""Boundary edits: move a start or end, split, merge; the audio is cut again from the
recording, the split, the lease and every transcript row stay, the old spans are kept."""

import io
import uuid
import wave
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from labeling import boundaries, queue
from labeling.models import Clip, ClipEdit, Transcript
from tests.conftest import clip_seconds_kept

pytestmark = pytest.mark.django_db

SECOND = 16_000


def samples_of(clip) -> np.ndarray:
    with clip.audio.open("rb") as handle, wave.open(io.BytesIO(handle.read())) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


def recording_samples(clip) -> np.ndarray:
    with clip.recording.audio.open("rb") as handle, wave.open(io.BytesIO(handle.read())) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


@pytest.fixture
def leased(project, make_clips, annotator):
    """Three 2 s clips end to end; the annotator holds the first, drawn for the test set."""
    clips = make_clips(project, count=3, seconds=2.0)
    Clip.objects.filter(pk=clips[0].pk).update(
        split="test",
        lease_user=annotator,
        lease_token=uuid.uuid4(),
        lease_expires_at=timezone.now() + timedelta(minutes=20),
    )
    return Clip.objects.get(pk=clips[0].pk)


def test_moving_the_end_cuts_the_clip_again_from_the_recording(leased, annotator):
    edited = boundaries.clip_reshape(
        clip=leased,
        user=annotator,
        lease_token=leased.lease_token,
        start=leased.start_sample + SECOND // 4,
        end=leased.end_sample - SECOND // 2,
    )
    assert (edited.start_sample, edited.end_sample) == (
        leased.start_sample + SECOND // 4,
        leased.end_sample - SECOND // 2,
    )
    whole = recording_samples(edited)
    assert np.array_equal(samples_of(edited), whole[edited.start_sample : edited.end_sample])
    # the same lease and split: the box's text, its unsent copy and the draw stay with it
    assert (edited.lease_user, edited.lease_token) == (annotator, leased.lease_token)
    assert edited.split == leased.split
    assert not Clip.objects.filter(pk=leased.pk).exists()
    (edit,) = ClipEdit.objects.all()
    assert (edit.kind, edit.old_clip_ids, edit.new_clip_ids) == (
        "reshape",
        [leased.pk],
        [edited.pk],
    )
    assert edit.old_spans == [[leased.start_sample, leased.end_sample]]
    assert edit.user == annotator
    assert clip_seconds_kept(edited.recording)


def test_an_edit_that_would_overlap_the_next_clip_is_refused_and_changes_nothing(leased, annotator):
    with pytest.raises(ValidationError, match="overlap"):
        boundaries.clip_reshape(
            clip=leased,
            user=annotator,
            lease_token=leased.lease_token,
            start=leased.start_sample,
            end=leased.end_sample + SECOND // 10,
        )
    with pytest.raises(ValidationError, match="at least 0.3 s"):
        boundaries.clip_reshape(
            clip=leased,
            user=annotator,
            lease_token=leased.lease_token,
            start=leased.start_sample,
            end=leased.start_sample + SECOND // 10,
        )
    assert Clip.objects.filter(pk=leased.pk).exists()
    assert not ClipEdit.objects.exists()


def test_only_the_lease_holder_edits_and_only_an_unlabeled_clip(leased, annotator, reviewer):
    with pytest.raises(ValidationError, match="no longer yours"):
        boundaries.clip_split(
            clip=leased,
            user=reviewer,
            lease_token=leased.lease_token,
            at=leased.start_sample + SECOND,
        )
    queue.transcript_submit(clip=leased, user=annotator, lease_token=leased.lease_token, text="a")
    with pytest.raises(ValidationError, match="labeled already"):
        boundaries.clip_split(
            clip=leased,
            user=annotator,
            lease_token=leased.lease_token,
            at=leased.start_sample + SECOND,
        )


def test_a_split_keeps_the_first_part_and_sends_the_second_to_the_queue(
    leased, annotator, reviewer
):
    at = leased.start_sample + SECOND // 2
    first, second = boundaries.clip_split(
        clip=leased, user=annotator, lease_token=leased.lease_token, at=at
    )
    assert (first.start_sample, first.end_sample) == (leased.start_sample, at)
    assert (second.start_sample, second.end_sample) == (at, leased.end_sample)
    assert first.lease_token == leased.lease_token and second.lease_user is None
    assert {first.split, second.split} == {leased.split}
    whole = recording_samples(first)
    assert np.array_equal(samples_of(second), whole[at : leased.end_sample])
    assert clip_seconds_kept(first.recording)
    served = [queue.clip_lease_next(project=leased.project, user=reviewer) for _ in range(3)]
    assert second.pk in [clip.pk for clip in served if clip]


def test_a_merge_joins_the_next_clip_and_keeps_the_transcript_rows_of_both(
    project, leased, annotator
):
    following = Clip.objects.filter(
        recording=leased.recording, start_sample=leased.end_sample
    ).get()
    Clip.objects.filter(pk=following.pk).update(split=leased.split)
    undone = Transcript.objects.create(
        clip=following, author=annotator, lease_token=uuid.uuid4(), text="old", status="withdrawn"
    )
    merged = boundaries.clip_merge_next(clip=leased, user=annotator, lease_token=leased.lease_token)
    assert (merged.start_sample, merged.end_sample) == (leased.start_sample, following.end_sample)
    undone.refresh_from_db()
    assert undone.clip == merged  # never lost
    assert len(samples_of(merged)) == following.end_sample - leased.start_sample
    assert ClipEdit.objects.get().old_clip_ids == [leased.pk, following.pk]
    assert clip_seconds_kept(merged.recording)


def test_a_merge_never_joins_a_labeled_clip_another_set_or_someone_elses_clip(
    project, leased, annotator, reviewer
):
    following = Clip.objects.get(recording=leased.recording, start_sample=leased.end_sample)
    Clip.objects.filter(pk=following.pk).update(split="train" if leased.split != "train" else "dev")
    with pytest.raises(ValidationError, match="another set"):
        boundaries.clip_merge_next(clip=leased, user=annotator, lease_token=leased.lease_token)
    Clip.objects.filter(pk=following.pk).update(split=leased.split)
    held = queue.clip_lease_next(project=project, user=reviewer)
    Clip.objects.filter(pk=held.pk).update(lease_user=None, lease_expires_at=None)
    Clip.objects.filter(pk=following.pk).update(
        lease_user=reviewer, lease_token=uuid.uuid4(), lease_expires_at=held.lease_expires_at
    )
    with pytest.raises(ValidationError, match="Someone is transcribing"):
        boundaries.clip_merge_next(clip=leased, user=annotator, lease_token=leased.lease_token)
    Clip.objects.filter(pk=following.pk).update(lease_user=None, status="submitted")
    with pytest.raises(ValidationError, match="labeled already"):
        boundaries.clip_merge_next(clip=leased, user=annotator, lease_token=leased.lease_token)
    assert Clip.objects.count() == 3 and not ClipEdit.objects.exists()


def test_the_page_edits_boundaries_and_brings_the_typed_text_back(client_for, leased, annotator):
    client = client_for(annotator)
    url = reverse("annotate_boundaries", args=[leased.project_id, leased.pk])
    form = {"lease_token": str(leased.lease_token), "text": "nusu ya", "action": "reshape"}
    response = client.post(url, {**form, "start": "0.25", "end": "1.5"}, HTTP_HX_REQUEST="true")
    edited = Clip.objects.get(recording=leased.recording, start_sample=SECOND // 4)
    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-clip="{edited.pk}"' in body and ">nusu ya</textarea>" in body
    assert "Boundaries moved" in body

    response = client.post(
        reverse("annotate_boundaries", args=[leased.project_id, edited.pk]),
        {**form, "start": "0.25", "end": "2.5"},
        HTTP_HX_REQUEST="true",
    )
    assert "overlap" in response.content.decode()
    assert Clip.objects.filter(pk=edited.pk).exists()

    context = client.get(reverse("clip_context_audio", args=[leased.project_id, edited.pk]))
    with wave.open(io.BytesIO(context.content)) as wav:  # 2 s on each side, within the recording
        assert wav.getnframes() == int(1.5 * SECOND) + 2 * SECOND


def test_clip_audio_answers_byte_ranges_so_the_browser_can_seek(client_for, leased, annotator):
    client = client_for(annotator)
    url = reverse("clip_audio", args=[leased.project_id, leased.pk])
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    part = client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(whole.content)}"
    tail = client.get(url, HTTP_RANGE="bytes=-10")
    assert tail.content == whole.content[-10:]
    assert client.get(url, HTTP_RANGE=f"bytes={len(whole.content) + 5}-").status_code == 416


def test_a_clip_whose_transcript_waits_for_review_keeps_its_boundaries(leased, annotator, owner):
    Transcript.objects.create(
        clip=leased, author=owner, lease_token=uuid.uuid4(), text="late", conflict=True
    )
    with pytest.raises(ValidationError, match="waits for a reviewer"):
        boundaries.clip_split(
            clip=leased,
            user=annotator,
            lease_token=leased.lease_token,
            at=leased.start_sample + SECOND,
        )
    following = Clip.objects.get(recording=leased.recording, start_sample=leased.end_sample)
    Transcript.objects.filter(clip=leased).update(clip=following)
    Clip.objects.filter(pk=following.pk).update(split=leased.split)
    with pytest.raises(ValidationError, match="labeled already"):
        boundaries.clip_merge_next(clip=leased, user=annotator, lease_token=leased.lease_token)


def test_a_submit_for_a_clip_cut_again_meanwhile_brings_the_text_to_the_new_clip(
    client_for, leased, annotator
):
    edited = boundaries.clip_reshape(
        clip=leased,
        user=annotator,
        lease_token=leased.lease_token,
        start=leased.start_sample,
        end=leased.end_sample - SECOND // 2,
    )
    response = client_for(annotator).post(
        reverse("annotate_submit", args=[leased.project_id, leased.pk]),
        {"lease_token": str(leased.lease_token), "text": "nusu ya"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert f'data-clip="{edited.pk}"' in body and ">nusu ya</textarea>" in body
    assert "just cut again" in body
    assert not Transcript.objects.exists()  # nothing stored against audio it was not written for
