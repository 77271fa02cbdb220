"""ELAN (.eaf) and Praat (.TextGrid) files in and out, written and read by the libraries
linguists' tools use (pympi-ling, praatio)."""

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from praatio import textgrid
from pympi.Elan import Eaf

from asr.audio import SAMPLE_RATE, decode_audio
from labeling import ingest, services
from labeling.models import Clip, Recording, Transcript
from tests.conftest import REAL_SPEECH

pytestmark = pytest.mark.django_db

GAP = 12_800  # tests/conftest.py's speech_recording: 0.8 s of quiet between utterances
ENGLISH = "abcdefghijklmnopqrstuvwxyz'"


@pytest.fixture
def utterances():
    """(start s, end s, text) of the ten utterances in speech_recording, in order."""
    rows = [json.loads(line) for line in (REAL_SPEECH / "manifest.jsonl").read_text().splitlines()]
    texts = {row["audio_filepath"]: row["text"] for row in rows}
    spans, at = [], 0
    for wav in sorted(REAL_SPEECH.glob("*.wav")):
        length = len(decode_audio(wav))
        spans.append((at / SAMPLE_RATE, (at + length) / SAMPLE_RATE, texts[wav.name]))
        at += length + GAP
    return spans


@pytest.fixture
def english(project):
    project.alphabet = ENGLISH
    project.save()
    return project


def times(rows) -> list[float]:
    return [value for row in rows for value in row[:2]]


def write_eaf(path, tiers: dict):
    eaf = Eaf()
    eaf.remove_tier("default")
    for tier, rows in tiers.items():
        eaf.add_tier(tier)
        for start, end, text in rows:
            eaf.add_annotation(tier, round(start * 1000), round(end * 1000), text)
    eaf.to_file(str(path))
    return path


def write_textgrid(path, tiers: dict, seconds: float):
    grid = textgrid.Textgrid()
    for tier, rows in tiers.items():
        grid.addTier(textgrid.IntervalTier(tier, rows, 0.0, seconds))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)
    return path


def post(client, project, audio, transcript, tier=""):
    files = {}
    if audio is not None:
        files["audio"] = SimpleUploadedFile(audio.name, audio.read_bytes())
    if transcript is not None:
        files["transcript"] = SimpleUploadedFile(transcript.name, transcript.read_bytes())
    return client.post(
        reverse("import_annotated", args=[project.pk]), {**files, "tier": tier}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def ingested(project) -> Recording:
    recording = project.recordings.get()
    ingest.recording_ingest(recording_id=recording.pk)  # what the default queue's task runs
    recording.refresh_from_db()
    return recording


def test_an_eaf_tier_becomes_labeled_clips_and_the_rest_is_cut_on_the_training_side(
    client_for, owner, english, speech_recording, utterances, tmp_path
):
    eaf = write_eaf(
        tmp_path / "interview.eaf", {"utterances": utterances[:6], "notes": [(1, 2, "x")]}
    )

    response = post(client_for(owner), english, speech_recording, eaf, tier="utterances")

    assert "interview.eaf: 6 annotations of tier “utterances” become labeled train clips" in (
        " ".join(messages_of(response))
    )
    recording = ingested(english)
    assert recording.status == Recording.Status.READY
    labeled = list(recording.clips.filter(status=Clip.Status.ACCEPTED).order_by("start_sample"))
    assert times([(c.start_seconds, c.end_seconds) for c in labeled]) == pytest.approx(
        times(utterances[:6]), abs=0.001
    )
    texts = [Transcript.objects.get(clip=c).text for c in labeled]
    assert texts == [text for _, _, text in utterances[:6]]
    open_clips = recording.clips.filter(status=Clip.Status.UNLABELED)
    assert open_clips.count() >= 3  # the four utterances nobody annotated
    for clip in open_clips:
        assert all(
            clip.end_sample <= c.start_sample or clip.start_sample >= c.end_sample for c in labeled
        )
    assert set(recording.clips.values_list("split", flat=True)) == {Clip.Split.TRAIN}

    before = recording.clips.count()
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.QUEUED)
    assert ingested(english).clips.count() == before  # a rerun adds nothing


def test_annotations_over_audio_that_repeats_an_earlier_recording_are_not_made_clips(
    client_for, owner, english, speech_recording, utterances, tmp_path
):
    from asr.audio import write_wav
    from labeling.ingest import recording_ingest

    client = client_for(owner)
    samples = decode_audio(speech_recording)
    excerpt = tmp_path / "excerpt.wav"  # the second to fourth utterances, uploaded first
    first, last = utterances[1][0], utterances[3][1]
    write_wav(excerpt, samples[int(first * SAMPLE_RATE) : int(last * SAMPLE_RATE)])
    client.post(
        reverse("recording_upload", args=[english.pk]),
        {"files": [SimpleUploadedFile(excerpt.name, excerpt.read_bytes())]},
        headers={"Accept": "application/json"},
    )
    eaf = write_eaf(tmp_path / "interview.eaf", {"utterances": utterances[:6]})

    post(client, english, speech_recording, eaf)
    recording = english.recordings.get(original_name=speech_recording.name)
    recording_ingest(recording_id=recording.pk)

    recording.refresh_from_db()
    labeled = recording.clips.filter(status=Clip.Status.ACCEPTED).order_by("start_sample")
    assert [Transcript.objects.get(clip=c).text for c in labeled] == [
        utterances[i][2] for i in (0, 4, 5)
    ]  # the excerpt's three would train as copies of its audio, whatever its split
    assert "3 of its labeled spans lie in audio that repeats another recording" in recording.note


def test_a_textgrid_with_two_tiers_needs_the_tier_named(
    client_for, owner, english, speech_recording, utterances, tmp_path
):
    grid = write_textgrid(
        tmp_path / "story.TextGrid",
        {"words": utterances[:3], "speaker": [(0.0, 10.0, "A")]},
        utterances[-1][1] + 0.5,
    )
    client = client_for(owner)

    refused = post(client, english, speech_recording, grid)

    assert messages_of(refused) == [
        "story.TextGrid: has 2 tiers with text (“words”, “speaker”); name the one to import. "
        "Nothing was kept."
    ]
    assert not Recording.objects.exists()
    post(client, english, speech_recording, grid, tier="words")
    recording = ingested(english)
    assert recording.tier_name == "words"
    assert recording.clips.filter(status=Clip.Status.ACCEPTED).count() == 3


@pytest.mark.parametrize(
    "case, expected",
    [
        (
            "no audio",
            "story.eaf: choose both the recording and its ELAN (.eaf), Praat (.TextGrid) or text file.",
        ),
        ("no such tier", "story.eaf: has no tier “words” with text; it has “utterances”"),
        (
            "past the end",
            "story.eaf: annotation 2 ends at 1:10.0, after the end of long-recording.wav",
        ),
        (
            "foreign letters",
            "story.eaf, tier “utterances”: annotation 1 (not in the alphabet: 1 2)",
        ),
        (
            "not a transcript",
            "story.csv: not an ELAN (.eaf), Praat (.TextGrid) or text (.txt) file",
        ),
        ("damaged", "story.eaf: not an ELAN file these tools can read"),
    ],
)
def test_a_bad_transcript_file_is_refused_whole_with_its_reason(
    client_for, owner, english, speech_recording, utterances, tmp_path, case, expected
):
    rows = utterances[:3]
    tier = ""
    if case == "no such tier":
        tier = "words"
    if case == "past the end":
        rows = [rows[0], (65.0, 70.0, "too late")]
    if case == "foreign letters":
        rows = [(rows[0][0], rows[0][1], "room 12"), *rows[1:]]
    eaf = write_eaf(tmp_path / "story.eaf", {"utterances": rows})
    if case == "not a transcript":
        eaf = eaf.rename(tmp_path / "story.csv")
    if case == "damaged":
        eaf.write_bytes(eaf.read_bytes()[:200])
    audio = None if case == "no audio" else speech_recording

    response = post(client_for(owner), english, audio, eaf, tier=tier)

    assert len(messages_of(response)) == 1 and messages_of(response)[0].startswith(expected)
    assert str(tmp_path) not in messages_of(response)[0]
    assert not Recording.objects.exists() and not Clip.objects.exists()


def test_the_export_opens_in_pympi_and_praatio_with_the_same_tier_and_reimports_the_same(
    client_for, owner, english, speech_recording, utterances, tmp_path
):
    eaf = write_eaf(tmp_path / "interview.eaf", {"utterances": utterances[:6]})
    client = client_for(owner)
    post(client, english, speech_recording, eaf, tier="utterances")
    recording = ingested(english)

    response = client.get(reverse("export_annotations", args=[english.pk]))

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "long-recording.TextGrid",
        "long-recording.eaf",
        "long-recording.wav",
    ]
    archive.extractall(tmp_path / "out")
    exported = Eaf(str(tmp_path / "out" / "long-recording.eaf"))
    assert list(exported.get_tier_names()) == ["utterances"]
    rows = sorted(exported.get_annotation_data_for_tier("utterances"))
    assert times([(s / 1000, e / 1000) for s, e, _ in rows]) == pytest.approx(
        times(utterances[:6]), abs=0.001
    )
    assert [t for _, _, t in rows] == [t for _, _, t in utterances[:6]]
    assert exported.get_linked_files()[0]["RELATIVE_MEDIA_URL"] == "long-recording.wav"
    grid = textgrid.openTextgrid(str(tmp_path / "out" / "long-recording.TextGrid"), False)
    assert list(grid.tierNames) == ["utterances"]
    assert [entry.label for entry in grid.getTier("utterances").entries] == [
        t for _, _, t in utterances[:6]
    ]
    assert grid.maxTimestamp == pytest.approx(recording.duration_seconds, abs=0.01)

    second = services.project_create(
        name="Copy", language_code="en", alphabet=ENGLISH, created_by=owner
    )
    post(
        client,
        second,
        tmp_path / "out" / "long-recording.wav",
        tmp_path / "out" / "long-recording.eaf",
    )
    copy = ingested(second)
    assert sorted(
        copy.clips.filter(status="accepted").values_list("start_sample", "end_sample")
    ) == sorted(recording.clips.filter(status="accepted").values_list("start_sample", "end_sample"))
