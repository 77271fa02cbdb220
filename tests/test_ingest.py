"""Uploads are decoded before they are kept; ingest cuts them into clips exactly once."""

import io
import struct
import subprocess
import tempfile
import time
import wave

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from asr.audio import AudioError, ffmpeg_executable
from labeling import ingest
from labeling.models import Clip, Recording
from tests.conftest import clip_seconds_kept

pytestmark = pytest.mark.django_db


def upload(client, project, *files, json=False):
    headers = {"Accept": "application/json"} if json else {}
    return client.post(
        reverse("recording_upload", args=[project.pk]), {"files": list(files)}, headers=headers
    )


def as_upload(path, name=None):
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="audio/wav")


@pytest.fixture
def speech_mp3(speech_recording, tmp_path):
    mp3 = tmp_path / "interview.mp3"
    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(speech_recording), str(mp3)], check=True
    )
    return mp3


def test_a_good_and_a_bad_file_one_kept_one_refused_with_its_reason(
    client_for, owner, project, speech_mp3, speech_recording
):
    notes = SimpleUploadedFile("notes.mp3", b"these are my field notes, not audio" * 50)
    response = upload(client_for(owner), project, as_upload(speech_mp3), notes, json=True)
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["message"].startswith("notes.mp3: not readable as audio (")
    assert tempfile.gettempdir() not in results[1]["message"]
    assert ".upload" not in results[1]["message"]
    recording = Recording.objects.get()
    assert recording.original_name == "interview.mp3"
    assert recording.status == "queued"
    with wave.open(str(speech_recording)) as source:
        seconds = source.getnframes() / source.getframerate()
    assert recording.duration_seconds == pytest.approx(seconds, abs=0.1)


@pytest.mark.django_db(transaction=True)  # commits as a real request does, queueing at once
def test_with_redis_down_an_upload_is_kept_and_says_how_to_go_on(
    client_for, owner, project, speech_recording, redis_down
):
    response = upload(client_for(owner), project, as_upload(speech_recording), json=True)
    [result] = response.json()["results"]
    assert result["ok"] and "cutting into clips" not in result["message"]
    assert (
        "kept; not cut into clips yet. The task queue (Redis) was unreachable"
        in (result["message"])
    )
    recording = Recording.objects.get()
    assert recording.status == "failed" and recording.audio.storage.exists(recording.audio.name)
    assert "The task queue (Redis) was unreachable" in recording.error
    assert "press Retry once Redis is back" in recording.error


def test_the_stored_name_is_generated(client_for, owner, project, speech_recording):
    upload(client_for(owner), project, as_upload(speech_recording, "../../etc/passwd.wav"))
    recording = Recording.objects.get()
    assert recording.original_name == "passwd.wav"
    assert recording.audio.name.startswith(f"recordings/{project.pk}/")
    assert "passwd" not in recording.audio.name and ".." not in recording.audio.name


def test_the_same_audio_twice_is_skipped_with_a_message(
    client_for, owner, project, speech_recording
):
    client = client_for(owner)
    upload(client, project, as_upload(speech_recording, "a.wav"))
    response = upload(client, project, as_upload(speech_recording, "b.wav"), json=True)
    assert "b.wav: the same audio as “a.wav”" in response.json()["results"][0]["message"]
    assert Recording.objects.count() == 1


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("VERNACULAR_MAX_UPLOAD_MB", 1, "long-recording.wav: 1.3 MB is over the limit of 1 MB"),
        ("VERNACULAR_MAX_RECORDING_MINUTES", 0, "long, the limit is 0:00:00"),
    ],
)
def test_limits_are_enforced_with_a_message(
    client_for, owner, project, speech_recording, settings, setting, value, message
):
    setattr(settings, setting, value)
    response = upload(client_for(owner), project, as_upload(speech_recording), json=True)
    assert message in response.json()["results"][0]["message"]
    assert not Recording.objects.exists()


def test_a_request_far_over_the_limit_is_refused_before_it_is_read(
    client_for, owner, project, speech_recording, settings
):
    settings.VERNACULAR_MAX_UPLOAD_MB = 0
    response = upload(client_for(owner), project, as_upload(speech_recording), json=True)
    assert response.status_code == 413
    message = response.json()["results"][0]["message"]
    assert message == "The request is too large: at most 1.0 MB here. Nothing was kept."
    assert not Recording.objects.exists()


def test_empty_and_silent_files_are_refused(client_for, owner, project, tmp_path):
    silent = tmp_path / "silence.wav"
    subprocess.run(
        [
            ffmpeg_executable(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "3",
            str(silent),
        ],
        check=True,
    )
    empty = SimpleUploadedFile("empty.wav", b"")
    response = upload(client_for(owner), project, as_upload(silent), empty, json=True)
    messages = [r["message"] for r in response.json()["results"]]
    assert "silence.wav: silent" in messages[0]
    assert "empty.wav: the file is empty" in messages[1]
    assert not Recording.objects.exists()


def test_without_javascript_the_form_upload_reports_through_messages(
    client_for, owner, project, speech_recording
):
    client = client_for(owner)
    response = upload(client, project, as_upload(speech_recording))
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "long-recording.wav: uploaded, 0.7 min; cutting into clips." in page
    assert 'data-status="queued"' in page


def test_an_upload_with_no_file_says_so(client_for, owner, project):
    response = upload(client_for(owner), project, json=True)
    assert response.json()["results"][0]["message"] == "Choose one or more audio files first."


def test_ingest_cuts_clips_at_pauses_and_a_rerun_adds_none(
    client_for, owner, project, speech_recording
):
    upload(client_for(owner), project, as_upload(speech_recording))
    recording = Recording.objects.get()
    ingest.recording_ingest(recording_id=recording.pk)
    recording.refresh_from_db()
    clips = list(recording.clips.order_by("start_sample"))
    assert recording.status == "ready" and recording.progress == 1.0
    assert 5 <= len(clips) <= 12
    for clip in clips:
        assert project.clip_min_seconds <= clip.duration_seconds <= project.clip_max_seconds
        assert clip.audio.size == 44 + 2 * (clip.end_sample - clip.start_sample)
    for before, after in zip(clips, clips[1:], strict=False):
        assert before.end_sample <= after.start_sample

    Recording.objects.filter(pk=recording.pk).update(status="queued")
    ingest.recording_ingest(recording_id=recording.pk)
    assert recording.clips.count() == len(clips)
    assert clip_seconds_kept(recording)  # counted once, though cut twice


def test_ingest_does_nothing_for_a_recording_that_is_not_queued(owner, project, make_clips):
    (clip,) = make_clips(project, count=1)
    Recording.objects.filter(pk=clip.recording_id).update(status="ready")
    ingest.recording_ingest(recording_id=clip.recording_id)
    assert Clip.objects.count() == 1


def test_a_failed_ingest_says_why_and_can_be_retried(
    client_for, owner, project, speech_recording, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    upload(client, project, as_upload(speech_recording))
    recording = Recording.objects.get()
    with recording.audio.open("wb") as broken:
        broken.write(b"RIFF....garbage")
    ingest.recording_ingest(recording_id=recording.pk)
    recording.refresh_from_db()
    assert recording.status == "failed"
    assert recording.error.startswith("Could not cut it into clips:")
    page = client.get(reverse("recording_list", args=[project.pk])).content.decode()
    assert "Could not cut it into clips" in page
    with django_capture_on_commit_callbacks() as queued:
        client.post(reverse("recording_retry", args=[project.pk, recording.pk]))
    recording.refresh_from_db()
    assert recording.status == "queued" and recording.error == ""
    assert len(queued) == 1  # the ingest task is sent again once the row is committed


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_upload_to_clips_through_a_real_worker(
    celery_worker, client_for, owner, project, speech_mp3
):
    upload(client_for(owner), project, as_upload(speech_mp3))
    recording = Recording.objects.get()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        recording.refresh_from_db()
        if recording.is_finished():
            break
        time.sleep(0.3)
    assert recording.status == "ready", recording.error
    assert recording.clips.count() >= 5
    assert recording.attempts == 1


def test_a_header_claiming_one_hertz_is_refused_at_upload_naming_the_file(
    client_for, owner, project
):
    frames = b"\x10\x00" * 8000  # 16 KB that a 1 Hz header stretches to 2:13:20
    header = b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16) + b"data"
    forged = SimpleUploadedFile("forged.wav", header + struct.pack("<I", len(frames)) + frames)

    [result] = upload(client_for(owner), project, forged, json=True).json()["results"]

    assert not result["ok"]
    assert result["message"].startswith("forged.wav: its header states a sample rate of 1 Hz")
    assert not Recording.objects.exists()


def test_a_truncated_mp3_keeps_its_readable_seconds_and_cuts_them_into_clips(
    client_for, owner, project, speech_mp3, settings
):
    settings.VERNACULAR_MAX_RECORDING_MINUTES = 60
    whole = speech_mp3.read_bytes()
    truncated = SimpleUploadedFile("cut-off.mp3", whole[: len(whole) // 2], "audio/mpeg")

    [result] = upload(client_for(owner), project, truncated, json=True).json()["results"]

    recording = Recording.objects.get()
    assert result["ok"] and "damaged:" in result["message"]
    assert recording.note.startswith("damaged: ") and "could be read" in recording.note
    ingest.recording_ingest(recording_id=recording.pk)
    recording.refresh_from_db()
    assert recording.status == "ready", recording.error
    assert recording.clips.exists()


def test_a_stored_file_that_fails_to_decode_is_named_as_the_user_named_it(owner, project):
    audio = SimpleUploadedFile("x.wav", b"RIFF....garbage" * 100)

    class Stored:
        def open(self, mode):
            return io.BytesIO(audio.read())

    with pytest.raises(AudioError) as raised:
        ingest.decode_stored(Stored(), "field-day-3.wav", max_seconds=60)

    assert str(raised.value).startswith("field-day-3.wav: ")
    assert tempfile.gettempdir() not in str(raised.value)
