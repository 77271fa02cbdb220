"""The same speech twice: caught across formats, rates and channels by its fingerprint
(asr.fingerprint), and a recording inside another flagged and kept off the test set."""

import subprocess

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from asr.audio import SAMPLE_RATE, decode_audio, ffmpeg_executable, write_wav
from labeling import ingest
from labeling.models import Clip, Recording

pytestmark = pytest.mark.django_db


def upload(client, project, path):
    response = client.post(
        reverse("recording_upload", args=[project.pk]),
        {"files": [SimpleUploadedFile(path.name, path.read_bytes())]},
        headers={"Accept": "application/json"},
    )
    return response.json()["results"][0]


def ingested(recording: Recording) -> Recording:
    ingest.recording_ingest(recording_id=recording.pk)
    recording.refresh_from_db()
    return recording


@pytest.fixture
def piece(speech_recording, tmp_path):
    """20 s from the middle of speech_recording, starting off the fingerprint's frame grid."""
    samples = decode_audio(speech_recording)
    start = int(12.013 * SAMPLE_RATE)
    path = tmp_path / "excerpt.wav"
    write_wav(path, samples[start : start + 20 * SAMPLE_RATE])
    return path, start / SAMPLE_RATE


def converted(source, target, *options):
    command = [ffmpeg_executable(), "-nostdin", "-v", "error", "-y", "-i", str(source)]
    subprocess.run([*command, *options, str(target)], check=True, capture_output=True)
    return target


def test_an_mp3_and_a_44k_stereo_wav_of_the_same_audio_are_caught_as_one(
    client_for, owner, project, speech_recording, tmp_path
):
    client = client_for(owner)
    mp3 = converted(speech_recording, tmp_path / "interview.mp3", "-b:a", "64k")
    stereo = converted(speech_recording, tmp_path / "interview-44k.wav", "-ac", "2", "-ar", "44100")

    assert upload(client, project, speech_recording)["ok"]
    for copy in (mp3, stereo):
        result = upload(client, project, copy)
        assert not result["ok"]
        assert result["message"] == (
            f"{copy.name}: the same audio as “long-recording.wav” (in another format, sample "
            "rate or channel count), uploaded before; skipped."
        )
    assert project.recordings.count() == 1


def test_a_recording_inside_a_longer_one_is_flagged_and_its_audio_not_cut_again(
    client_for, owner, project, speech_recording, piece
):
    client = client_for(owner)
    path, offset = piece
    assert upload(client, project, speech_recording)["ok"]
    first = ingested(project.recordings.get())
    test_clips = first.clips.filter(start_sample__gte=offset * SAMPLE_RATE)

    result = upload(client, project, path)

    assert result["ok"]
    assert "repeats audio of “long-recording.wav”" in result["message"]
    assert "stay out of the test and dev sets" in result["message"]
    excerpt = ingested(project.recordings.get(original_name="excerpt.wav"))
    assert excerpt.status == Recording.Status.READY
    assert excerpt.repeats[0]["start"] == pytest.approx(0.0, abs=0.1)
    assert excerpt.repeats[0]["end"] == pytest.approx(20.0, abs=0.3)
    assert excerpt.clips.count() == 0  # all of it is audio the project has
    assert test_clips.exists()


def test_a_longer_recording_that_contains_an_earlier_one_is_cut_around_it(
    client_for, owner, project, speech_recording, piece
):
    client = client_for(owner)
    path, offset = piece
    assert upload(client, project, path)["ok"]

    result = upload(client, project, speech_recording)

    assert result["ok"]
    assert "contains “excerpt.wav” at 0:12.0-0:3" in result["message"]
    long = ingested(project.recordings.get(original_name="long-recording.wav"))
    repeated = (int(offset * SAMPLE_RATE), int((offset + 20) * SAMPLE_RATE))
    clips = list(long.clips.all())
    assert clips, "the audio outside the excerpt is cut into clips"
    margin = SAMPLE_RATE // 2  # the fingerprint's frames are 32 ms; VAD spans end in quiet
    for clip in clips:
        assert clip.end_sample <= repeated[0] + margin or clip.start_sample >= repeated[1] - margin
    assert {clip.split for clip in clips} == {Clip.Split.TRAIN}


def test_different_speech_is_not_taken_for_a_repeat(
    client_for, owner, project, speech_recording, tmp_path
):
    samples = decode_audio(speech_recording)
    first, second = tmp_path / "monday.wav", tmp_path / "tuesday.wav"
    write_wav(first, samples[: 24 * SAMPLE_RATE])
    write_wav(second, np.ascontiguousarray(samples[26 * SAMPLE_RATE :]))
    client = client_for(owner)

    results = [upload(client, project, first), upload(client, project, second)]

    assert all(r["ok"] and "repeat" not in r["message"] for r in results)
    assert all(not r.repeats for r in project.recordings.all())


def test_a_recording_from_before_fingerprints_is_fingerprinted_by_the_command_and_then_caught(
    client_for, owner, project, speech_recording, tmp_path
):
    from django.core.management import call_command

    client = client_for(owner)
    assert upload(client, project, speech_recording)["ok"]
    Recording.objects.update(fingerprint=b"")  # as if uploaded before session 7
    mp3 = converted(speech_recording, tmp_path / "interview.mp3", "-b:a", "64k")
    assert upload(client, project, mp3)["ok"]  # nothing to compare with: taken twice
    Recording.objects.filter(original_name="interview.mp3").delete()
    Recording.objects.update(fingerprint=b"")

    call_command("fingerprint_recordings")
    call_command("fingerprint_recordings")  # again: nothing left to do

    assert Recording.objects.exclude(fingerprint=b"").count() == 1
    result = upload(client, project, mp3)
    assert not result["ok"] and "the same audio as “long-recording.wav”" in result["message"]


def test_an_upload_names_its_speaker_or_session_for_the_draw(
    client_for, owner, project, speech_recording
):
    response = client_for(owner).post(
        reverse("recording_upload", args=[project.pk]),
        {
            "files": [SimpleUploadedFile("day-2.wav", speech_recording.read_bytes())],
            "speaker": "  elder amina ",
        },
        headers={"Accept": "application/json"},
    )
    assert response.json()["results"][0]["ok"]
    assert Recording.objects.get().speaker == "elder amina"
    page = client_for(owner).get(reverse("recording_list", args=[project.pk]))
    assert "speaker or session: elder amina" in page.content.decode()
