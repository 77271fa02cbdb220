"""The annotation queue: order, leases, and never losing a label."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from labeling import queue, selectors
from labeling.models import Clip, Transcript

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_targets(project):
    # 2 s clips: two fill the test set (4 s >= 3 s), one the dev set.
    project.test_minutes_target = 3 / 60
    project.dev_minutes_target = 1 / 60
    project.save()
    return project


def submit(clip, user, text="habari yako"):
    clip.refresh_from_db()
    return queue.transcript_submit(clip=clip, user=user, lease_token=clip.lease_token, text=text)


def test_test_clips_come_first_then_dev_then_the_best_scored(small_targets, make_clips, annotator):
    make_clips(small_targets, count=6)
    splits = []
    for _ in range(3):
        clip = queue.clip_lease_next(project=small_targets, user=annotator)
        splits.append(clip.split)
        submit(clip, annotator)
    assert splits == ["test", "test", "dev"]
    # Test and dev are full: the clip the latest scoring run rates highest comes next.
    remaining = list(Clip.objects.filter(status="unlabeled").order_by("random_key"))
    for score, clip in enumerate(remaining):
        Clip.objects.filter(pk=clip.pk).update(selection_score=score)
    best = queue.clip_lease_next(project=small_targets, user=annotator)
    assert best.pk == remaining[-1].pk
    assert best.split == "train"


def test_before_any_model_the_order_is_random_but_stable(project, make_clips, annotator):
    make_clips(project, count=5)
    project.test_minutes_target = project.dev_minutes_target = 0
    project.save()
    expected = Clip.objects.order_by("random_key").first()
    assert queue.clip_lease_next(project=project, user=annotator).pk == expected.pk


def test_a_reload_gives_back_the_same_clip(project, make_clips, annotator):
    make_clips(project, count=3)
    first = queue.clip_lease_next(project=project, user=annotator)
    again = queue.clip_lease_next(project=project, user=annotator)
    assert first.pk == again.pk
    assert first.lease_token == again.lease_token


def test_two_annotators_never_get_the_same_clip(project, make_clips, annotator, reviewer):
    make_clips(project, count=2)
    mine = queue.clip_lease_next(project=project, user=annotator)
    theirs = queue.clip_lease_next(project=project, user=reviewer)
    assert mine.pk != theirs.pk
    assert queue.clip_lease_next(project=project, user=reviewer).pk == theirs.pk


@pytest.mark.django_db(transaction=True)
def test_racing_for_the_last_clip_gives_it_to_one(project, make_clips, annotator, reviewer, owner):
    make_clips(project, count=1)
    users = [annotator, reviewer, owner]
    results: dict[str, Clip | None] = {}
    barrier = threading.Barrier(len(users))

    def take(user):
        barrier.wait()
        try:
            results[user.username] = queue.clip_lease_next(project=project, user=user)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [name for name, clip in results.items() if clip is not None]
    assert len(results) == 3
    assert len(winners) == 1
    assert Clip.objects.get().lease_user.username == winners[0]


def at_once(project, make_user, work, count: int = 20, timeout: float = 180) -> None:
    """`count` annotators of the project run work(user) in threads released together; any
    error in one of them fails the test (it is not lost in its thread)."""
    users = [make_user(f"annotator{i}") for i in range(count)]
    for user in users:
        project.memberships.create(user=user, role="annotator")
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def run(user):
        try:
            barrier.wait()
            work(user)
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert failures == []


@pytest.mark.django_db(transaction=True)
def test_twenty_annotators_at_once_never_hear_nothing_to_transcribe_while_clips_are_open(
    project, make_clips, make_user
):
    make_clips(project, count=150)
    empty: list[str] = []

    def work(user):
        for _ in range(5):
            clip = queue.clip_lease_next(project=project, user=user)
            if clip is None:
                empty.append(user.username)
                continue
            submit(clip, user, "sawa")

    at_once(project, make_user, work, timeout=120)

    assert empty == []  # 100 leases from 150 open clips: an empty queue would be false
    assert Transcript.objects.count() == 100


def test_an_expired_lease_returns_the_clip_to_the_queue(project, make_clips, annotator, reviewer):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    assert queue.clip_lease_next(project=project, user=reviewer) is None
    Clip.objects.filter(pk=clip.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert queue.clip_lease_next(project=project, user=reviewer).pk == clip.pk


def test_a_double_submit_stores_one_transcript(project, make_clips, annotator):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    token = clip.lease_token
    first = queue.transcript_submit(clip=clip, user=annotator, lease_token=token, text="moja")
    second = queue.transcript_submit(clip=clip, user=annotator, lease_token=token, text="moja")
    assert first.created and not second.created
    assert second.transcript.pk == first.transcript.pk
    assert Transcript.objects.count() == 1


def test_a_late_submit_is_kept_when_nobody_else_took_the_clip(project, make_clips, annotator):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    Clip.objects.filter(pk=clip.pk).update(lease_expires_at=timezone.now() - timedelta(hours=1))
    result = submit(clip, annotator, "chelewa")
    clip.refresh_from_db()
    assert result.created and not result.conflict
    assert clip.status == "submitted"
    assert clip.transcripts.get().text == "chelewa"


def test_a_late_submit_after_someone_else_labeled_it_keeps_both(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    late = queue.clip_lease_next(project=project, user=annotator)
    late_token = late.lease_token
    Clip.objects.filter(pk=late.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    other = queue.clip_lease_next(project=project, user=reviewer)
    submit(other, reviewer, "ya kwanza")
    result = queue.transcript_submit(
        clip=late, user=annotator, lease_token=late_token, text="ya pili"
    )
    assert result.created and result.conflict
    texts = set(Transcript.objects.filter(conflict=True).values_list("text", flat=True))
    assert texts == {"ya kwanza", "ya pili"}
    # Disagreements come first for reviewers.
    assert list(selectors.review_items(project))[0].conflict is True


def test_a_crash_inside_submit_leaves_the_previous_state(
    project, make_clips, annotator, monkeypatch
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)

    def crash(self, *args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(Clip, "save", crash)
    with pytest.raises(RuntimeError):
        submit(clip, annotator)
    monkeypatch.undo()
    clip.refresh_from_db()
    assert Transcript.objects.count() == 0
    assert clip.status == "unlabeled"
    assert clip.lease_user == annotator
    # The same lease can still be submitted afterwards.
    assert submit(clip, annotator).created


def test_a_flagged_clip_is_recorded_and_kept_out(project, make_clips, annotator):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.transcript_submit(
        clip=clip, user=annotator, lease_token=clip.lease_token, text="", flag="no_speech"
    )
    clip.refresh_from_db()
    assert clip.status == "flagged"
    assert clip.transcripts.get().flag == "no_speech"
    assert queue.clip_lease_next(project=project, user=annotator) is None


def test_a_skipped_clip_is_not_served_to_me_again_but_to_others(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.clip_skip(clip=clip, user=annotator, lease_token=clip.lease_token)
    assert queue.clip_lease_next(project=project, user=annotator) is None
    assert queue.clip_lease_next(project=project, user=reviewer).pk == clip.pk


def test_undo_gives_me_the_clip_back_with_my_text(project, make_clips, annotator):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    submit(clip, annotator, "nimekosea")
    queue.clip_lease_next(project=project, user=annotator)  # moved on to the next clip
    undone_clip, undone = queue.transcript_undo_last(project=project, user=annotator)
    assert undone_clip.pk == clip.pk
    assert undone.status == "withdrawn"
    assert undone_clip.status == "unlabeled"
    assert undone_clip.lease_user == annotator
    assert selectors.clip_prefill(undone_clip, annotator) == ("nimekosea", False)


def test_undo_refuses_a_reviewed_submission(project, make_clips, annotator, reviewer):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    transcript = submit(clip, annotator).transcript
    queue.transcript_review(transcript=transcript, reviewer=reviewer, action="accept")
    with pytest.raises(ValidationError):
        queue.transcript_undo_last(project=project, user=annotator)


def test_review_accept_edit_and_reject(project, make_clips, annotator, reviewer):
    make_clips(project, count=3)
    transcripts = []
    for _ in range(3):
        clip = queue.clip_lease_next(project=project, user=annotator)
        transcripts.append(submit(clip, annotator, "sawa").transcript)
    accepted, edited, rejected = transcripts
    queue.transcript_review(transcript=accepted, reviewer=reviewer, action="accept", text="sawa")
    queue.transcript_review(transcript=edited, reviewer=reviewer, action="accept", text="sawa sawa")
    queue.transcript_review(transcript=rejected, reviewer=reviewer, action="reject")
    for t in transcripts:
        t.refresh_from_db()
    accepted.clip.refresh_from_db()
    assert accepted.status == "accepted" and accepted.clip.status == "accepted"
    assert edited.status == "superseded"
    fixed = edited.clip.transcripts.get(status="accepted")
    assert (fixed.text, fixed.author, fixed.draft_text) == ("sawa sawa", reviewer, "sawa")
    rejected.clip.refresh_from_db()
    assert rejected.status == "rejected" and rejected.clip.status == "unlabeled"
    # The rejected clip is back in the queue.
    assert queue.clip_lease_next(project=project, user=annotator).pk == rejected.clip.pk
    with pytest.raises(ValidationError):
        queue.transcript_review(transcript=accepted, reviewer=reviewer, action="reject")


def test_stats_count_minutes_speed_and_draft_changes(project, make_clips, annotator):
    clips = make_clips(project, count=2, seconds=3.0)
    Clip.objects.filter(pk=clips[0].pk).update(draft_text="habari yako")
    for _ in range(2):
        clip = queue.clip_lease_next(project=project, user=annotator)
        Clip.objects.filter(pk=clip.pk).update(
            lease_expires_at=timezone.now()
            + timedelta(minutes=project.lease_minutes)
            - timedelta(seconds=30)
        )
        clip.refresh_from_db()
        queue.transcript_submit(
            clip=clip,
            user=annotator,
            lease_token=clip.lease_token,
            text=clip.draft_text or "asante",  # the draft is sent as it was
            seconds_spent=selectors.seconds_on_lease(clip, clip.lease_token, project),
        )
    total, rows = selectors.project_stats(project)
    (row,) = rows
    assert row.username == "amina"
    assert row.labeled_minutes == pytest.approx(0.1)
    assert row.work_per_audio == pytest.approx(10.0, rel=0.05)  # 30 s of work per 3 s clip
    assert row.clips_per_hour == pytest.approx(120, rel=0.05)
    assert row.draft_changed == 0.0
    assert total.clips == 2


def test_a_changed_draft_counts_its_edits(project, make_clips, annotator):
    (clip,) = make_clips(project, count=1)
    Clip.objects.filter(pk=clip.pk).update(draft_text="abcd")
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.transcript_submit(clip=clip, user=annotator, lease_token=clip.lease_token, text="abzz")
    _, (row,) = selectors.project_stats(project)
    assert row.draft_changed == pytest.approx(0.5)


def test_a_made_up_lease_token_is_kept_for_review_and_the_clip_keeps_its_draw(
    project, make_clips, annotator, reviewer
):
    (clip,) = make_clips(project, count=1)  # never leased: no split drawn yet

    result = queue.transcript_submit(clip=clip, user=annotator, lease_token=uuid.uuid4(), text="x")

    clip.refresh_from_db()
    assert result.created and not result.held
    assert clip.status == "unlabeled" and clip.split == ""  # still in the queue, not "train"
    assert list(selectors.review_items(project)) == [result.transcript]
    queue.transcript_review(transcript=result.transcript, reviewer=reviewer, action="accept")
    clip.refresh_from_db()
    assert clip.status == "accepted" and clip.split == "test"  # its turn in the test draw


def test_a_lease_that_timed_out_untouched_still_counts_as_held(project, make_clips, annotator):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    Clip.objects.filter(pk=clip.pk).update(lease_expires_at=timezone.now() - timedelta(days=1))

    result = submit(clip, annotator, "chelewa sana")

    assert result.held and not result.conflict


def test_a_submit_with_someone_elses_lease_keeps_both_texts(
    project, make_clips, annotator, reviewer, owner
):
    make_clips(project, count=1)
    mine = queue.clip_lease_next(project=project, user=annotator)
    Clip.objects.filter(pk=mine.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    theirs = queue.clip_lease_next(project=project, user=reviewer)
    # A stale page of mine somehow carries their token: my text must not take their place.
    stale = queue.transcript_submit(
        clip=mine, user=annotator, lease_token=theirs.lease_token, text="yangu"
    )
    assert stale.created and stale.transcript.lease_token != theirs.lease_token
    assert not stale.held
    own = queue.transcript_submit(
        clip=theirs, user=reviewer, lease_token=theirs.lease_token, text="yao"
    )
    assert own.created and own.conflict
    assert set(Transcript.objects.values_list("text", flat=True)) == {"yangu", "yao"}
    theirs.refresh_from_db()
    assert theirs.status == "submitted"  # labeled by its leaseholder: out of the queue
    assert queue.clip_lease_next(project=project, user=owner) is None


def test_rejecting_one_side_of_a_disagreement_lets_the_other_stand(
    project, make_clips, annotator, reviewer, owner
):
    make_clips(project, count=1)
    first = queue.clip_lease_next(project=project, user=annotator)
    token = first.lease_token
    Clip.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = queue.clip_lease_next(project=project, user=reviewer)
    submit(second, reviewer, "sahihi")
    wrong = queue.transcript_submit(
        clip=first, user=annotator, lease_token=token, text="makosa"
    ).transcript
    queue.transcript_review(transcript=wrong, reviewer=owner, action="reject")
    standing = Transcript.objects.get(text="sahihi")
    assert standing.conflict is False
    assert [t.text for t in selectors.labeled_set(project)] == ["sahihi"]


def test_undo_is_refused_while_someone_else_has_the_clip_open(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    submit(clip, annotator, "kwanza")
    Transcript.objects.update(status="submitted")
    Clip.objects.filter(pk=clip.pk).update(
        status="unlabeled",
        lease_user=reviewer,
        lease_token=uuid.uuid4(),
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    with pytest.raises(ValidationError, match="Someone else has this clip open"):
        queue.transcript_undo_last(project=project, user=annotator)
    assert Transcript.objects.get().status == "submitted"


def test_reviewer_edits_do_not_count_as_annotation_in_stats(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    transcript = submit(clip, annotator, "sawa").transcript
    queue.transcript_review(
        transcript=transcript, reviewer=reviewer, action="accept", text="sawa sana"
    )
    total, rows = selectors.project_stats(project)
    assert [r.username for r in rows] == ["amina"]
    assert rows[0].labeled_minutes == pytest.approx(2 / 60)
    assert total.clips == 1


def many_recordings(project, make_clips, count=12, clips=10):
    """`count` ready recordings of `clips` 3 s clips each (30 s a recording)."""
    from labeling.models import Recording

    for _ in range(count):
        make_clips(project, count=clips, seconds=3.0)
    Recording.objects.filter(project=project).update(status=Recording.Status.READY)


def label_everything(project, user) -> int:
    labeled = 0
    while (clip := queue.clip_lease_next(project=project, user=user)) is not None:
        submit(clip, user)
        labeled += 1
    return labeled


def test_drawn_by_recording_no_recording_has_clips_in_both_test_or_dev_and_train(
    project, make_clips, annotator
):
    project.test_minutes_target, project.dev_minutes_target = 1.0, 0.5
    project.save()
    many_recordings(project, make_clips)

    assert label_everything(project, annotator) == 120

    splits_by_recording = {}
    for recording_id, split in Clip.objects.values_list("recording_id", "split"):
        splits_by_recording.setdefault(recording_id, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_by_recording.values()), splits_by_recording
    minutes = selectors.evaluation_minutes(project)
    assert minutes["test"] >= 1.0 and minutes["dev"] >= 0.5
    assert sum(s == {"test"} for s in splits_by_recording.values()) == 2  # 2 x 30 s >= 1 min
    assert selectors.split_warnings(project) == []


def test_the_draw_plans_with_minutes_of_clips_so_the_dev_set_gets_a_recording_too(
    project, make_clips, annotator
):
    from labeling.models import Recording

    project.test_minutes_target, project.dev_minutes_target = 1.0, 0.5
    project.save()
    many_recordings(project, make_clips)
    # 30 s of clips in each minute of recording: the pauses between utterances are not cut
    Recording.objects.filter(project=project).update(duration_seconds=60.0)

    label_everything(project, annotator)

    minutes = selectors.evaluation_minutes(project)
    assert minutes["test"] >= 1.0 and minutes["dev"] >= 0.5
    recordings = {}
    for recording_id, split in Clip.objects.values_list("recording_id", "split"):
        recordings.setdefault(recording_id, set()).add(split)
    assert sorted(s.pop() for s in recordings.values() if s != {"train"}) == ["dev", "test", "test"]


def test_drawn_by_clip_the_same_project_straddles_and_the_dashboard_says_so(
    project, make_clips, annotator
):
    project.test_minutes_target, project.dev_minutes_target = 1.0, 0.5
    project.split_by = project.SplitBy.CLIP
    project.save()
    many_recordings(project, make_clips)

    label_everything(project, annotator)

    warnings = selectors.split_warnings(project)
    assert any("drawn by clip (Settings)" in w for w in warnings)
    assert any("clips both in the test or dev set and in training" in w for w in warnings)


def test_with_two_recordings_the_draw_is_by_clip_and_says_why(project, make_clips, annotator):
    project.test_minutes_target, project.dev_minutes_target = 0.2, 0.1
    project.save()
    many_recordings(project, make_clips, count=2)

    assert label_everything(project, annotator) == 20  # nothing stalls

    assert selectors.split_draw(project).by_recording is False
    assert (
        "the project has 2 recordings, and a draw by recording needs at least 3"
        in (selectors.split_warnings(project)[0])
    )


def test_whole_recordings_that_would_take_over_a_third_of_the_audio_are_not_drawn(
    project, make_clips, annotator
):
    project.test_minutes_target, project.dev_minutes_target = 2.0, 1.0  # of 6 min in all
    project.save()
    many_recordings(project, make_clips)

    draw = selectors.split_draw(project)

    assert draw.by_recording is False
    assert "would take 3 of the project's 6 min" in draw.why_by_clip


def test_an_annotator_edits_an_earlier_transcript_as_a_new_version_and_a_reviewed_one_goes_back_to_review(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    first = submit(clip, annotator, "sawa").transcript
    queue.transcript_review(transcript=first, reviewer=reviewer, action="accept")

    same = queue.transcript_edit_own(transcript=first, user=annotator, text=" sawa ")
    assert same.pk == first.pk  # nothing changed, nothing stored

    edited = queue.transcript_edit_own(transcript=first, user=annotator, text="sawa sana")
    first.refresh_from_db()
    clip.refresh_from_db()
    assert (first.status, edited.status, edited.edit_of) == ("superseded", "submitted", first)
    assert clip.status == "submitted"  # reviewed again
    with pytest.raises(ValidationError, match="no longer stands"):
        queue.transcript_edit_own(transcript=first, user=annotator, text="tena")
    with pytest.raises(ValidationError, match="Only its author"):
        queue.transcript_edit_own(transcript=edited, user=reviewer, text="yangu")


def test_unsent_text_is_kept_for_the_lease_holder_only_and_comes_back_on_another_machine(
    project, make_clips, annotator, reviewer, client_for
):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    assert not queue.lease_text_save(
        clip=clip, user=reviewer, lease_token=clip.lease_token, text="not mine"
    )
    assert queue.lease_text_save(
        clip=clip, user=annotator, lease_token=clip.lease_token, text="nusu ya"
    )
    # another machine: a new session, the same lease, the text in the box
    body = client_for(annotator).get(reverse("annotate", args=[project.pk])).content.decode()
    assert f'data-clip="{clip.pk}"' in body and ">nusu ya</textarea>" in body
    submit(Clip.objects.get(pk=clip.pk), annotator, "nusu ya saa")
    clip.refresh_from_db()
    assert clip.lease_text == ""


def test_later_puts_a_clip_off_for_me_with_my_text_while_others_may_take_it(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.lease_text_save(clip=clip, user=annotator, lease_token=clip.lease_token, text="nusu")
    queue.clip_postpone(clip=clip, user=annotator, lease_token=clip.lease_token)
    with pytest.raises(ValidationError, match="no longer yours"):
        queue.clip_postpone(clip=clip, user=annotator, lease_token=clip.lease_token)

    other = queue.clip_lease_next(project=project, user=annotator)
    assert other.pk != clip.pk  # put off for me
    submit(other, annotator)
    assert queue.clip_lease_next(project=project, user=annotator) is None  # nothing else yet
    Clip.objects.filter(pk=clip.pk).update(postponed_until=timezone.now() - timedelta(seconds=1))
    back = queue.clip_lease_next(project=project, user=annotator)
    assert back.pk == clip.pk and back.lease_text == "nusu"  # with what I had typed
    assert selectors.clip_prefill(back, annotator) == ("nusu", False)


def test_a_clip_put_off_by_someone_else_comes_to_me_without_their_text(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.lease_text_save(clip=clip, user=annotator, lease_token=clip.lease_token, text="nusu")
    queue.clip_postpone(clip=clip, user=annotator, lease_token=clip.lease_token)
    mine = queue.clip_lease_next(project=project, user=reviewer)
    assert mine.pk == clip.pk and mine.lease_text == ""


def test_with_a_second_listener_a_transcript_counts_once_someone_else_agrees(
    project, make_clips, annotator, reviewer, owner
):
    project.second_listener = True
    project.save()
    make_clips(project, count=3)
    clip = queue.clip_lease_next(project=project, user=annotator)
    submit(clip, annotator, "Habari yako")
    assert selectors.labeled_set(project) == []  # not yet: nobody else has listened

    check = queue.clip_lease_next(project=project, user=reviewer)
    assert check.pk == clip.pk and check.status == "submitted"  # checks come first
    assert selectors.clip_prefill(check, reviewer) == ("Habari yako", False)
    assert queue.clip_lease_next(project=project, user=annotator).pk != clip.pk  # never mine
    agreed = queue.transcript_submit(
        clip=check, user=reviewer, lease_token=check.lease_token, text="habari yako."
    )
    assert agreed.agreed and not agreed.conflict
    clip.refresh_from_db()
    assert clip.status == "accepted"
    assert set(clip.transcripts.values_list("status", flat=True)) == {"accepted"}
    assert [t.clip_id for t in selectors.labeled_set(project)] == [clip.pk]


def test_a_second_listener_who_hears_it_otherwise_sends_both_to_review(
    project, make_clips, annotator, reviewer, owner
):
    project.second_listener = True
    project.save()
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    submit(clip, annotator, "habari yako")
    check = queue.clip_lease_next(project=project, user=reviewer)
    other = queue.transcript_submit(
        clip=check, user=reviewer, lease_token=check.lease_token, text="habari zako"
    )
    assert other.conflict and not other.agreed
    clip.refresh_from_db()
    assert clip.status == "submitted" and clip.lease_user is None
    assert all(clip.transcripts.values_list("conflict", flat=True))
    assert queue.clip_lease_next(project=project, user=owner).pk != clip.pk  # not a check now
    review = selectors.review_items(project, reviewer=owner)
    assert {t.text for t in review if t.clip_id == clip.pk} == {"habari yako", "habari zako"}


def test_without_a_second_listener_a_submitted_clip_is_never_served_again(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=2)
    clip = queue.clip_lease_next(project=project, user=annotator)
    submit(clip, annotator)
    assert queue.clip_lease_next(project=project, user=reviewer).pk != clip.pk


def test_recordings_of_one_speaker_go_into_test_dev_or_training_together(
    project, make_clips, annotator
):
    from labeling.models import Recording

    project.test_minutes_target, project.dev_minutes_target = 1.0, 0.5
    project.save()
    many_recordings(project, make_clips)
    first_four = list(Recording.objects.order_by("pk").values_list("pk", flat=True)[:4])
    Recording.objects.filter(pk__in=first_four).update(speaker="amina")  # 2 min of her
    Recording.objects.exclude(pk__in=first_four).update(duration_seconds=20.0)  # shorter

    assert label_everything(project, annotator) == 120

    sides = {}
    for speaker, split in Clip.objects.values_list("recording__speaker", "split"):
        sides.setdefault(speaker or None, set()).add(split)
    assert len(sides["amina"]) == 1  # all of her in one set, whichever it is
    minutes = selectors.evaluation_minutes(project)
    assert minutes["test"] >= 1.0 and minutes["dev"] >= 0.5


def test_a_speaker_in_the_test_set_never_trains_even_from_a_later_recording(
    project, make_clips, annotator
):
    from labeling.models import Recording

    project.test_minutes_target, project.dev_minutes_target = 0.5, 0.0
    project.save()
    many_recordings(project, make_clips, count=6)
    amina = Recording.objects.order_by("pk").first()
    Recording.objects.filter(pk=amina.pk).update(speaker="amina", duration_seconds=10.0)
    label_everything(project, annotator)
    assert set(Clip.objects.filter(split="test").values_list("recording_id", flat=True)) == {
        amina.pk
    }  # the shortest recording: 30 s of clips fill the test set

    later = make_clips(project, count=3)  # another recording of hers, after the draw
    Recording.objects.filter(pk=later[0].recording_id).update(status="ready", speaker="amina")
    label_everything(project, annotator)

    assert not Clip.objects.filter(recording__speaker="amina", split="train").exists()
    assert Clip.objects.filter(recording_id=later[0].recording_id, split="").count() == 3


def test_a_claim_read_before_another_annotator_drew_its_recording_into_test_is_refused(
    project, make_clips, annotator, reviewer
):
    first, second = make_clips(project, count=2)  # one recording; nobody has drawn it
    now = timezone.now()
    # the reviewer's queue read `second` as an undrawn training clip; before its claim, the
    # annotator's claim draws the recording into the test set
    assert queue.clip_claim(
        project=project, clip_id=first.pk, user=annotator, split="test", now=now, by_recording=True
    )
    assert not queue.clip_claim(
        project=project, clip_id=second.pk, user=reviewer, split="train", now=now, by_recording=True
    )

    second.refresh_from_db()
    assert second.split == "test" and second.lease_user is None


def test_a_later_recording_of_a_speaker_in_test_cannot_be_claimed_for_training(
    project, make_clips, annotator
):
    from labeling.models import Recording

    (tested,) = make_clips(project, count=1)
    (later,) = make_clips(project, count=1)  # uploaded after her first was drawn
    now = timezone.now()
    Recording.objects.filter(pk=tested.recording_id).update(speaker="amina")
    assert queue.clip_claim(
        project=project, clip_id=tested.pk, user=annotator, split="test", now=now, by_recording=True
    )
    Recording.objects.filter(pk=later.recording_id).update(speaker="amina")

    assert not queue.clip_claim(
        project=project, clip_id=later.pk, user=annotator, split="train", now=now, by_recording=True
    )
    assert queue.clip_claim(
        project=project, clip_id=later.pk, user=annotator, split="test", now=now, by_recording=True
    )


def test_a_clip_already_in_test_is_still_served_when_its_speaker_also_trains_elsewhere(
    project, make_clips, annotator
):
    from labeling.models import Recording

    (tested,) = make_clips(project, count=1)
    (trained,) = make_clips(project, count=1)
    Recording.objects.update(speaker="amina")  # a mix from before draws were locked
    Clip.objects.filter(pk=tested.pk).update(split="test")
    Clip.objects.filter(pk=trained.pk).update(split="train")
    now = timezone.now()

    assert queue.clip_claim(
        project=project, clip_id=tested.pk, user=annotator, split="test", now=now, by_recording=True
    )
    assert not queue.clip_claim(
        project=project,
        clip_id=tested.pk,
        user=annotator,
        split="train",
        now=now,
        by_recording=True,
    )  # (leased already, and in test)


@pytest.mark.django_db(transaction=True)
def test_twenty_annotators_at_once_never_split_a_recording_between_test_or_dev_and_train(
    project, make_clips, make_user
):
    project.test_minutes_target, project.dev_minutes_target = 1.0, 0.5
    project.save()
    many_recordings(project, make_clips, count=12, clips=10)

    def work(user):
        while (clip := queue.clip_lease_next(project=project, user=user)) is not None:
            submit(clip, user, "sawa")

    at_once(project, make_user, work)

    splits_by_recording: dict[int, set[str]] = {}
    for recording_id, split in Clip.objects.values_list("recording_id", "split"):
        splits_by_recording.setdefault(recording_id, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_by_recording.values()), splits_by_recording
    assert Transcript.objects.count() == 120


def test_a_transcript_kept_for_review_is_not_mine_to_edit(project, make_clips, annotator, reviewer):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    late = queue.transcript_submit(
        clip=clip, user=reviewer, lease_token=uuid.uuid4(), text="si yangu"
    ).transcript  # a made-up token: kept for review, the clip stays open
    assert late.conflict and not selectors.own_transcripts(project, reviewer).exists()
    with pytest.raises(ValidationError, match="waits for a reviewer"):
        queue.transcript_edit_own(transcript=late, user=reviewer, text="sasa yangu")


def test_without_the_mode_a_held_submitted_clip_is_not_a_check(
    project, make_clips, annotator, reviewer
):
    (clip,) = make_clips(project, count=1)
    Transcript.objects.create(clip=clip, author=reviewer, lease_token=uuid.uuid4(), text="yake")
    token = uuid.uuid4()
    Clip.objects.filter(pk=clip.pk).update(
        status="submitted",
        lease_user=annotator,
        lease_token=token,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    clip.refresh_from_db()
    assert selectors.clip_prefill(clip, annotator)[0] != "yake"
    result = queue.transcript_submit(clip=clip, user=annotator, lease_token=token, text="yake")
    assert not result.agreed
    assert not Transcript.objects.filter(status="accepted").exists()


def test_someone_elses_unsent_text_never_reaches_the_one_who_put_the_clip_off(
    project, make_clips, annotator, reviewer
):
    make_clips(project, count=1)
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.clip_postpone(clip=clip, user=annotator, lease_token=clip.lease_token)
    theirs = queue.clip_lease_next(project=project, user=reviewer)
    queue.lease_text_save(clip=theirs, user=reviewer, lease_token=theirs.lease_token, text="yake")
    queue.clip_skip(clip=theirs, user=reviewer, lease_token=theirs.lease_token)
    Clip.objects.filter(pk=clip.pk).update(lease_text="yake")  # as if left behind
    mine = queue.clip_lease_next(project=project, user=annotator)
    assert mine.pk == clip.pk and mine.lease_text == "" and mine.postponed_by is None
