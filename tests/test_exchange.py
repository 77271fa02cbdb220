"""Labeled data out (manifest zip, CSV) and in (zip, folder), and back again."""

import csv
import io
import json
import re
import tempfile
import time
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from labeling import exchange, queue
from labeling.ingest import UploadLimits
from labeling.models import Clip, Recording, Transcript
from tests.conftest import clip_seconds_kept, real_speech_dir

pytestmark = pytest.mark.django_db

ENGLISH = "abcdefghijklmnopqrstuvwxyz'"


@pytest.fixture
def english(project):
    project.alphabet = ENGLISH
    project.save()
    return project


def export_then_import(client_for, owner, source, target):
    """Project `source`'s manifest zip, exported by its owner and imported into `target` (an
    English project) by target's own member."""
    exported = b"".join(
        client_for(owner).get(reverse("export_manifest", args=[source.pk])).streaming_content
    )
    target.alphabet = ENGLISH
    target.save()
    client_for(target.memberships.get().user).post(
        reverse("import_manifest", args=[target.pk]),
        {"archive": SimpleUploadedFile("export.zip", exported)},
    )


def label(project, user, texts):
    for text in texts:
        clip = queue.clip_lease_next(project=project, user=user)
        queue.transcript_submit(clip=clip, user=user, lease_token=clip.lease_token, text=text)


def test_export_zip_and_csv_hold_the_labeled_set(client_for, owner, annotator, project, make_clips):
    make_clips(project, count=3)
    label(project, annotator, ["moja", "mbili"])
    clip = queue.clip_lease_next(project=project, user=annotator)
    queue.transcript_submit(
        clip=clip, user=annotator, lease_token=clip.lease_token, text="", flag="noise"
    )
    client = client_for(owner)

    response = client.get(reverse("export_manifest", args=[project.pk]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines()]
    assert sorted(r["text"] for r in rows) == ["mbili", "moja"]  # the flagged clip is left out
    for row in rows:
        assert archive.read(row["audio_filepath"])[:4] == b"RIFF"
        assert row["duration"] == 2.0 and row["author"] == "amina"

    text = client.get(reverse("export_csv", args=[project.pk])).content.decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["text"] for r in table) == ["mbili", "moja"]


def test_an_accepted_edit_is_what_gets_exported(owner, annotator, reviewer, project, make_clips):
    from labeling.selectors import labeled_set

    make_clips(project, count=1)
    label(project, annotator, ["sawa"])
    queue.transcript_review(
        transcript=Transcript.objects.get(), reviewer=reviewer, action="accept", text="sawa sana"
    )
    assert [t.text for t in labeled_set(project)] == ["sawa sana"]


def make_import_zip(tmp_path, rows, files):
    path = tmp_path / "import.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/manifest.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
        for name, content in files.items():
            archive.writestr(f"data/{name}", content)
    return SimpleUploadedFile("import.zip", path.read_bytes(), content_type="application/zip")


def test_importing_a_zip_keeps_good_rows_and_names_the_bad_ones(
    client_for, owner, english, tmp_path
):
    speech = real_speech_dir()
    manifest = [json.loads(line) for line in (speech / "manifest.jsonl").read_text().splitlines()][
        :3
    ]
    files = {
        row["audio_filepath"]: (speech / row["audio_filepath"]).read_bytes() for row in manifest
    }
    manifest.append({"audio_filepath": "missing.wav", "text": "gone"})
    manifest.append({"audio_filepath": manifest[0]["audio_filepath"], "text": "costs 5 pounds"})
    manifest.append({"audio_filepath": "../../etc/passwd", "text": "no"})
    upload = make_import_zip(tmp_path, manifest, files)

    response = client_for(owner).post(
        reverse("import_manifest", args=[english.pk]), {"archive": upload}, follow=True
    )
    body = response.content.decode()
    assert "Imported 3 labeled clips: 3 train." in body
    assert "line 4 (missing.wav): no such file next to the manifest" in body
    assert "line 5" in body and "not in the alphabet: 5" in body
    assert "line 6 (../../etc/passwd): the path must stay inside" in body
    clips = Clip.objects.filter(project=english)
    assert clips.count() == 3
    assert set(clips.values_list("split", "status")) == {("train", "accepted")}
    assert Transcript.objects.filter(status="accepted").count() == 3
    assert all(clip_seconds_kept(clip.recording) for clip in clips)


def test_importing_something_that_is_not_a_zip(client_for, owner, english):
    junk = SimpleUploadedFile("data.zip", b"not a zip")
    response = client_for(owner).post(
        reverse("import_manifest", args=[english.pk]), {"archive": junk}, follow=True
    )
    assert "Not imported: This is not a zip file" in response.content.decode()
    assert not Recording.objects.exists()


def test_export_then_import_keeps_the_test_and_dev_sets_and_what_training_reads(
    client_for, owner, annotator, english, other_project, make_clips, settings
):
    english.test_minutes_target = 2 * 2.0 / 60  # two 2 s clips each in test and dev
    english.dev_minutes_target = 2 * 2.0 / 60
    english.strip_chars = ".,"
    english.save()
    make_clips(english, count=6)
    Recording.objects.filter(project=english).update(speaker="elder amina")
    label(english, annotator, ["One.", "two", "three,", "four", "five", "six"])
    queue.transcript_review(
        transcript=Transcript.objects.get(text="four"), reviewer=owner, action="accept"
    )
    response = client_for(owner).get(reverse("export_manifest", args=[english.pk]))
    exported = b"".join(response.streaming_content)
    rows = [
        json.loads(line)
        for line in zipfile.ZipFile(io.BytesIO(exported)).read("manifest.jsonl").splitlines()
    ]
    assert {r["text"]: r["text_normalized"] for r in rows}["One."] == "one"
    assert {r["speaker"] for r in rows} == {"elder amina"}
    other_project.alphabet = ENGLISH + ".,"
    other_project.save()
    outsider = other_project.memberships.get().user

    page = client_for(outsider).post(
        reverse("import_manifest", args=[other_project.pk]),
        {"archive": SimpleUploadedFile("x.zip", exported)},
        follow=True,
    )

    assert "Imported 6 labeled clips: 2 test, 2 dev, 2 train." in page.content.decode()

    def standing(project):
        return {
            (t.clip.split, t.text, t.status, t.clip.status)
            for t in Transcript.objects.filter(clip__project=project).select_related("clip")
        }

    assert standing(other_project) == standing(english)
    assert set(other_project.recordings.values_list("speaker", flat=True)) == {"elder amina"}
    # The same test audio, sample for sample: the same model scores the same there.
    test_audio = {
        project: sorted(
            c.audio.open("rb").read()[44:]
            for c in Clip.objects.filter(project=project, split="test")
        )
        for project in (english, other_project)
    }
    assert test_audio[english] == test_audio[other_project]


def test_the_same_model_scores_an_imported_export_as_it_scores_the_original(
    client_for, owner, english, other_project, labeled_speech, trained_whisper_model
):
    from asr.evaluate import evaluate_model
    from asr.text import normalize_text
    from labeling.selectors import labeled_set
    from training.worker.trainer import clip_samples

    model, _, _ = trained_whisper_model
    labeled_speech(english)  # ten real English clips: two test, two dev, six train
    export_then_import(client_for, owner, english, other_project)

    def test_figures(project):
        rules = project.text_rules()
        test = sorted(
            (t for t in labeled_set(project) if t.clip.split == "test"), key=lambda t: t.text
        )
        result = evaluate_model(
            model,
            [clip_samples(t.clip) for t in test],
            [normalize_text(t.text, rules) for t in test],
        )
        return len(test), round(result.wer, 6), round(result.cer, 6)

    figures = test_figures(english)
    assert figures[0] == 2 and 0 < figures[2] < 0.5  # a real figure: some errors, not all
    assert test_figures(other_project) == figures


def test_imported_clips_of_one_recording_stay_one_unit_in_the_draw(
    client_for, owner, annotator, english, other_project, make_clips
):
    make_clips(english, count=3)
    make_clips(english, count=2)  # two recordings, no speaker named
    for number, recording in enumerate(english.recordings.order_by("pk"), start=1):
        recording.original_name = f"session-{number}.wav"
        recording.save()
    label(english, annotator, ["one", "two", "three", "four", "five"])

    export_then_import(client_for, owner, english, other_project)

    sessions = sorted(other_project.recordings.values_list("speaker", flat=True))
    assert len(sessions) == 5 and len(set(sessions)) == 2  # a clip a recording, two units
    assert set(sessions) == set(english.recordings.values_list("original_name", flat=True))


def test_an_import_row_with_a_split_it_cannot_have_is_named(owner, english, tmp_path):
    ((row, audio),) = speech_rows(1)
    path = tmp_path / "bad-split.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.jsonl", json.dumps({**row, "split": "holdout"}) + "\n")
        archive.writestr(row["audio_filepath"], audio)

    with path.open("rb") as handle:
        report = exchange.zip_import(
            project=english, archive_file=handle, user=owner, limits=UploadLimits(2**24, 600)
        )

    assert report.imported == 0
    assert (
        "split must be test, dev or train" in report.problems[0]
        and "'holdout'" in report.problems[0]
    )


def test_the_folder_import_command(owner, english, capsys):
    call_command(
        "import_manifest",
        str(real_speech_dir() / "manifest.jsonl"),
        project=english.pk,
        user=owner.username,
    )
    assert "Imported 10 labeled clips: 10 train." in capsys.readouterr().out
    call_command(
        "import_manifest",
        str(real_speech_dir() / "manifest.jsonl"),
        project=english.pk,
        user=owner.username,
    )
    captured = capsys.readouterr()
    assert "Imported 0 labeled clips." in captured.out
    assert "already; skipped" in captured.err


def speech_rows(count):
    speech = real_speech_dir()
    rows = [json.loads(line) for line in (speech / "manifest.jsonl").read_text().splitlines()]
    return [(row, (speech / row["audio_filepath"]).read_bytes()) for row in rows[:count]]


def import_post(client, project, upload):
    response = client.post(
        reverse("import_manifest", args=[project.pk]), {"archive": upload}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_damaged_and_an_encrypted_member_are_reported_by_row_and_the_rest_imported(
    client_for, owner, english, tmp_path, compression
):
    (good, good_audio), (crc, crc_audio), (locked, locked_audio) = speech_rows(3)
    path = tmp_path / "import.zip"
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(
            "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in (good, crc, locked))
        )
        archive.writestr(good["audio_filepath"], good_audio)
        archive.writestr(crc["audio_filepath"], crc_audio)
        archive.writestr(locked["audio_filepath"], locked_audio)
    content = bytearray(path.read_bytes())
    name = locked["audio_filepath"].encode()
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        header = next(
            match.start()
            for match in re.finditer(re.escape(signature), content)
            if name in content[match.start() : match.start() + 46 + len(name)]
        )
        content[header + flag_at] |= 0x1  # "encrypted": a reader needs a password
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(crc["audio_filepath"])
    data_at = member.header_offset + 30 + len(member.filename) + len(member.extra)
    for at in range(data_at + 100, data_at + member.compress_size - 100, 997):
        content[at] ^= 0xFF  # flipped bytes: a broken stream, or a CRC that no longer matches

    body = import_post(client_for(owner), english, SimpleUploadedFile("x.zip", bytes(content)))

    assert "Imported 1 labeled clip: 1 train." in body, re.findall(
        r"(?:Not imported|Imported)[^<]*", body
    )
    assert (
        f"line 2 ({crc['audio_filepath']}): could not be read from the zip (it is damaged" in body
    )
    assert (
        f"line 3 ({locked['audio_filepath']}): could not be read from the zip (it is encrypted)"
        in body
    )
    assert Clip.objects.filter(project=english).count() == 1


def test_a_manifest_bomb_is_read_in_bounded_memory_and_stops_at_the_problem_cap(
    owner, english, tmp_path
):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.jsonl", b"{}\n" * (50 * 2**20 // 3))  # 50 MB in ~50 KB
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    started = time.monotonic()

    with path.open("rb") as handle:
        report = exchange.zip_import(
            project=english, archive_file=handle, user=owner, limits=UploadLimits(2**20, 60)
        )

    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 20 * 2**20
    assert len(report.problems) == exchange.MAX_PROBLEMS
    assert report.stopped.startswith("Stopped after 200 rows that could not be imported")


def test_an_endless_line_is_refused_without_holding_it(owner, english, tmp_path):
    ((row, audio),) = speech_rows(1)
    path = tmp_path / "long-line.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.jsonl", "x" * 5_000_000 + "\n" + json.dumps(row) + "\n")
        archive.writestr(row["audio_filepath"], audio)

    with path.open("rb") as handle:
        report = exchange.zip_import(
            project=english, archive_file=handle, user=owner, limits=UploadLimits(2**24, 600)
        )

    assert report.imported == 1
    assert report.problems == ["line 1: over 100,000 characters"]


def test_a_member_larger_than_the_limit_is_cut_off_while_copying(owner, english, tmp_path):
    ((row, audio),) = speech_rows(1)
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.jsonl", json.dumps(row) + "\n")
        archive.writestr(row["audio_filepath"], audio)

    with path.open("rb") as handle:
        report = exchange.zip_import(
            project=english, archive_file=handle, user=owner, limits=UploadLimits(1000, 600)
        )

    assert report.imported == 0
    assert report.problems == [f"line 1 ({row['audio_filepath']}): over the limit of 0 MB"]


def test_an_unreadable_member_names_the_users_file_not_a_server_path(owner, english, tmp_path):
    path = tmp_path / "junk.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.jsonl", json.dumps({"audio_filepath": "a.wav", "text": "hi"}))
        archive.writestr("a.wav", b"RIFF but not really audio" * 200)

    with path.open("rb") as handle:
        report = exchange.zip_import(
            project=english, archive_file=handle, user=owner, limits=UploadLimits(2**24, 600)
        )

    [problem] = report.problems
    assert problem.startswith("line 1 (a.wav): not readable as audio")
    assert tempfile.gettempdir() not in problem
    assert re.search(r"[0-9a-f]{32}", problem) is None  # nor the scratch copy's name


@pytest.mark.parametrize("text", ["=1+1", "@sum(a1)", "-1+1", "+1"])
def test_csv_cells_that_a_spreadsheet_would_run_open_as_text(
    client_for, owner, annotator, project, make_clips, text
):
    project.alphabet += "=@()+-1"
    project.save()
    [clip] = make_clips(project, count=1)
    clip.recording.original_name = '=HYPERLINK("http://x")'
    clip.recording.save()
    label(project, annotator, [text])

    body = client_for(owner).get(reverse("export_csv", args=[project.pk])).content.decode()

    [row] = list(csv.DictReader(io.StringIO(body)))
    assert row["text"] == "'" + text
    assert row["recording"] == '\'=HYPERLINK("http://x")'
    assert row["start_seconds"] == "0.0"  # numbers stay numbers


def test_the_import_page_says_why_it_stopped_reading(client_for, owner, english, tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.jsonl", b"{}\n" * 1000)

    body = import_post(client_for(owner), english, SimpleUploadedFile("b.zip", path.read_bytes()))

    assert "… and 180 more rows not imported." in body
    assert "Stopped after 200 rows that could not be imported; the rest was not read." in body


def test_the_same_clip_as_mp3_in_an_import_and_an_upload_is_skipped_as_the_same_audio(
    client_for, owner, english, tmp_path
):
    import subprocess

    from asr.audio import ffmpeg_executable

    speech = real_speech_dir()
    row = json.loads((speech / "manifest.jsonl").read_text().splitlines()[0])
    wav = speech / row["audio_filepath"]
    mp3 = tmp_path / "copy.mp3"
    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(wav), "-b:a", "64k", str(mp3)], check=True
    )
    rows = [row, {**row, "audio_filepath": "copy.mp3"}]
    upload = make_import_zip(
        tmp_path, rows, {row["audio_filepath"]: wav.read_bytes(), "copy.mp3": mp3.read_bytes()}
    )
    client = client_for(owner)

    body = client.post(
        reverse("import_manifest", args=[english.pk]), {"archive": upload}, follow=True
    ).content.decode()

    assert "Imported 1 labeled clip: 1 train." in body
    assert f"line 2 (copy.mp3): the same audio as “{row['audio_filepath']}”" in body
    result = client.post(
        reverse("recording_upload", args=[english.pk]),
        {"files": [SimpleUploadedFile("again.mp3", mp3.read_bytes())]},
        headers={"Accept": "application/json"},
    ).json()["results"][0]
    assert not result["ok"] and "the same audio as" in result["message"]
