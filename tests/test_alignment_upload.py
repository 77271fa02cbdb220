"""A recording with its untimed text: aligned by a real gpu worker with the promoted model,
each line a train clip, the lines that fit badly waiting in Review; before any round, with a
base model's letters, or by the recording's pauses with every clip waiting in Review."""

import json
import shutil
import time

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from asr.text import TextRules, normalize_text
from labeling import queue
from labeling.models import Clip, Recording, Transcript
from labeling.selectors import labeled_set, review_items
from tests.conftest import REAL_SPEECH
from training.models import ModelVersion, TrainingRound
from training.selectors import labeled_minutes
from training.worker.aligner import recording_align

ENGLISH = "abcdefghijklmnopqrstuvwxyz'"


@pytest.fixture
def lines():
    rows = [json.loads(line) for line in (REAL_SPEECH / "manifest.jsonl").read_text().splitlines()]
    rules = TextRules(strip_characters=",.?!;:\"'")
    texts = {row["audio_filepath"]: normalize_text(row["text"], rules) for row in rows}
    return [texts[wav.name] for wav in sorted(REAL_SPEECH.glob("*.wav"))]  # the recording's order


@pytest.fixture
def english(project):
    project.alphabet = ENGLISH
    project.save()
    return project


@pytest.fixture
def promoted(english, trained_whisper_model, tmp_path):
    _, directory, _ = trained_whisper_model
    shutil.copytree(directory, tmp_path / "model")
    training_round = TrainingRound.objects.create(
        project=english, number=1, base="builtin:whisper-base", status="succeeded"
    )
    return ModelVersion.objects.create(
        project=english,
        round=training_round,
        directory=str(tmp_path / "model"),
        labeled_minutes=1,
        promoted=True,
    )


def post(client, project, audio, text: str):
    files = {
        "audio": SimpleUploadedFile(audio.name, audio.read_bytes()),
        "transcript": SimpleUploadedFile("story.txt", text.encode()),
    }
    response = client.post(reverse("import_annotated", args=[project.pk]), files, follow=True)
    return [str(m) for m in response.context["messages"]]


def clips_of(recording):
    clips = list(recording.clips.order_by("start_sample"))
    return clips, [Transcript.objects.get(clip=clip).text for clip in clips]


@pytest.mark.django_db
def test_before_any_round_the_text_is_placed_by_its_pauses_and_every_clip_waits_in_review(
    client_for, owner, english, speech_recording, lines
):
    messages = post(client_for(owner), english, speech_recording, "\n".join(lines))
    assert messages == [
        "story.txt: 10 lines, to be aligned with long-recording.wav by a gpu worker."
    ]
    recording = Recording.objects.get()

    recording_align(recording_id=recording.pk)  # what the gpu worker's task calls

    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY, recording.error
    clips, texts = clips_of(recording)
    assert texts == lines
    assert {clip.status for clip in clips} == {Clip.Status.SUBMITTED}  # a listener first
    assert "by its pauses and line lengths (no model knows the letters yet)" in recording.note
    # nobody typed these: none trains before someone accepts it, and the uploader, who
    # would not see their own typing in Review, sees them there
    assert labeled_set(english) == [] and labeled_minutes(english) == 0
    assert review_items(english, reviewer=owner).count() == 10
    queue.transcript_review(
        transcript=Transcript.objects.get(clip=clips[0]), reviewer=owner, action="accept"
    )
    assert [t.clip for t in labeled_set(english)] == [clips[0]]
    # each clip holds its own utterance: the cuts fall in the 0.8 s pauses between them
    durations = [sf.info(wav).duration for wav in sorted(REAL_SPEECH.glob("*.wav"))]
    ends = np.cumsum(np.add(durations, 0.8))
    for clip, end in zip(clips[:-1], ends[:-1], strict=True):
        assert end - 0.8 - 0.1 <= clip.end_sample / 16_000 <= end + 0.1


@pytest.mark.django_db
def test_a_base_model_that_knows_the_letters_places_the_text_before_any_round(
    client_for, owner, english, trained_whisper_model, speech_recording, lines
):
    _, directory, _ = trained_whisper_model
    english.base_model = str(directory)  # a saved CTC model: its own head and letters
    english.save()
    post(client_for(owner), english, speech_recording, "\n".join(lines))
    recording = Recording.objects.get()

    recording_align(recording_id=recording.pk)

    recording.refresh_from_db()
    clips, texts = clips_of(recording)
    assert texts == lines
    assert "aligned 10 lines of its text with the base model" in recording.note
    assert sum(clip.status == Clip.Status.ACCEPTED for clip in clips) >= 8


@pytest.mark.django_db
def test_more_lines_than_the_recording_has_pauses_fail_with_a_message_and_keep_no_clip(
    client_for, owner, english, speech_recording, lines
):
    words = " ".join(lines).split()  # a word a line: far more lines than pauses
    post(client_for(owner), english, speech_recording, "\n".join(words))
    recording = Recording.objects.get()

    recording_align(recording_id=recording.pk)

    recording.refresh_from_db()
    assert recording.status == Recording.Status.FAILED
    assert recording.error.startswith(
        f"Could not align the text with the recording: {len(words)} lines"
    )
    assert f"need {len(words) - 1} pauses between them, and the recording has" in recording.error
    assert not recording.clips.exists()


@pytest.mark.django_db
def test_a_text_longer_than_the_recording_can_hold_is_refused_and_nothing_kept(
    client_for, owner, english, speech_recording, lines
):
    messages = post(client_for(owner), english, speech_recording, "\n".join(lines * 5))

    assert len(messages) == 1 and messages[0].startswith("story.txt: ")
    assert "letters cannot be read in 42 s of audio (at most 25 a second)" in messages[0]
    assert "Nothing was kept." in messages[0]
    assert not Recording.objects.exists()


@pytest.mark.django_db
def test_a_line_outside_the_alphabet_is_refused(
    client_for, owner, english, promoted, speech_recording, lines
):
    messages = post(
        client_for(owner), english, speech_recording, "\n".join([*lines[:3], "room 101"])
    )

    assert messages == ["story.txt: utterance 4: not in the alphabet: 1 0. Nothing was kept."]
    assert not Recording.objects.exists()


@pytest.mark.celery
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_aligns_the_text_and_a_wrong_line_waits_in_review(
    client_for, owner, english, promoted, speech_recording, lines, celery_worker
):
    text = list(lines)
    text[5] = "the weather was fine and everyone went to the market"

    messages = post(client_for(owner), english, speech_recording, "\n".join(text) + "\n")

    assert messages == [
        "story.txt: 10 lines, to be aligned with long-recording.wav by a gpu worker."
    ]
    recording = Recording.objects.get()
    deadline = time.monotonic() + 300
    while recording.status != Recording.Status.READY:
        assert recording.status != Recording.Status.FAILED, recording.error
        assert time.monotonic() < deadline, "the worker did not align it in 5 minutes"
        time.sleep(0.5)
        recording.refresh_from_db()
    clips = list(recording.clips.order_by("start_sample"))
    assert [Transcript.objects.get(clip=c).text for c in clips] == text
    assert {c.split for c in clips} == {Clip.Split.TRAIN}
    assert clips[5].status == Clip.Status.SUBMITTED  # waits for a reviewer
    accepted = sum(c.status == Clip.Status.ACCEPTED for c in clips)
    assert accepted >= 7, [
        Transcript.objects.get(clip=c).text for c in clips if c.status != "accepted"
    ]
    assert f"aligned 10 lines of its text with model 1; {10 - accepted} fit the audio badly" in (
        recording.note
    )
    assert all(a.end_sample <= b.start_sample for a, b in zip(clips, clips[1:], strict=False))


@pytest.mark.django_db
def test_after_a_failed_alignment_the_same_audio_with_the_right_text_replaces_it(
    client_for, owner, english, speech_recording, lines
):
    client = client_for(owner)
    post(client, english, speech_recording, "\n".join(" ".join(lines).split()))  # a word a line
    failed = Recording.objects.get()
    recording_align(recording_id=failed.pk)
    failed.refresh_from_db()
    assert failed.status == Recording.Status.FAILED

    messages = post(client, english, speech_recording, "\n".join(lines))

    assert messages == [
        "story.txt: 10 lines, to be aligned with long-recording.wav by a gpu worker."
    ]
    recording = Recording.objects.get()  # the failed one is gone, replaced
    assert recording.pk != failed.pk
    assert "replaces the upload of “long-recording.wav” that failed" in recording.note
    recording_align(recording_id=recording.pk)
    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY and recording.clips.count() == 10
