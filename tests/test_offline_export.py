"""The round page's offline export: built by a real gpu worker, downloaded as a zip whose
runner transcribes as the app does in a process that cannot import our code."""

import io
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
from django.urls import reverse

from asr.audio import decode_audio
from asr.model import transcribe_clips
from training.exports import MODEL_FILES_MISSING
from training.models import ModelVersion, OfflineStatus, TrainingRound
from training.worker import base_models
from training.worker.exporter import offline_export_run

pytest.importorskip("onnxruntime")


@pytest.fixture
def whisper_version(project, trained_whisper_model, tmp_path):
    _, directory, _ = trained_whisper_model
    model_dir = tmp_path / "round-1" / "model"
    shutil.copytree(directory, model_dir)
    training_round = TrainingRound.objects.create(
        project=project, number=1, base="builtin:whisper-base", status="succeeded"
    )
    return ModelVersion.objects.create(
        project=project,
        round=training_round,
        directory=str(model_dir),
        labeled_minutes=0.7,
        test_wer=0.31,
        test_cer=0.12,
        test_clips=2,
        promoted=True,
    )


def page(client, version) -> str:
    url = reverse("model_version", args=[version.project_id, version.round.number])
    return client.get(url).content.decode()


@pytest.mark.celery
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_manager_builds_the_offline_export_and_its_runner_reads_as_the_app_does(
    client_for, owner, whisper_version, trained_whisper_model, celery_worker, tmp_path
):
    _, _, pairs = trained_whisper_model
    client = client_for(owner)
    build = reverse("model_offline_build", args=[whisper_version.project_id, 1])

    response = client.post(build, follow=True)

    assert "Building the offline export" in response.content.decode()
    assert 'id="offline-export" hx-get=' in response.content.decode()
    deadline = time.monotonic() + 300
    while whisper_version.offline_status != OfflineStatus.READY:
        assert time.monotonic() < deadline, "the worker did not build the export in 5 minutes"
        assert whisper_version.offline_status != OfflineStatus.FAILED, whisper_version.offline_error
        time.sleep(0.5)
        whisper_version.refresh_from_db()
    assert "Download for offline use (ONNX + runner, zip, " in page(client, whisper_version)

    download = client.get(reverse("model_offline_download", args=[whisper_version.project_id, 1]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "round-1-offline"
    card = (folder / "README.md").read_text()
    assert "Test WER: 31.0%" in card and "python transcribe.py" in card
    assert archive.getinfo("round-1-offline/model.onnx").compress_type == zipfile.ZIP_STORED
    clip = pairs[6][0]
    model = base_models.load_version(whisper_version.directory)
    expected = transcribe_clips(model, [decode_audio(clip)])[0].text
    run = subprocess.run(
        [sys.executable, "-I", str(folder / "transcribe.py"), "--model", "model.onnx", str(clip)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
        cwd=folder,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == f"{clip.name}\t{expected}\n"


@pytest.mark.django_db
def test_a_second_build_request_while_one_is_queued_queues_nothing(
    client_for, owner, whisper_version
):
    client = client_for(owner)
    build = reverse("model_offline_build", args=[whisper_version.project_id, 1])
    client.post(build)
    whisper_version.refresh_from_db()
    requested = whisper_version.offline_requested_at

    response = client.post(build, follow=True)

    assert "already being built" in response.content.decode()
    whisper_version.refresh_from_db()
    assert whisper_version.offline_status == OfflineStatus.QUEUED
    assert whisper_version.offline_requested_at == requested


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_build_fails_with_a_message_and_can_be_asked_again(
    client_for, owner, whisper_version, redis_down
):
    client = client_for(owner)

    client.post(reverse("model_offline_build", args=[whisper_version.project_id, 1]))

    whisper_version.refresh_from_db()
    assert whisper_version.offline_status == OfflineStatus.FAILED
    body = page(client, whisper_version)
    assert "The task queue (Redis) was unreachable" in body
    assert "Build the offline export again" in body


@pytest.mark.django_db
def test_damaged_model_files_fail_the_export_and_the_download_with_a_clear_message(
    client_for, owner, whisper_version
):
    from pathlib import Path

    weights = Path(whisper_version.directory) / "whisper_ctc.safetensors"
    weights.write_bytes(b"not safetensors at all")
    ModelVersion.objects.filter(pk=whisper_version.pk).update(offline_status="queued")

    offline_export_run(version_id=whisper_version.pk)

    whisper_version.refresh_from_db()
    assert whisper_version.offline_status == OfflineStatus.FAILED
    assert whisper_version.offline_error == MODEL_FILES_MISSING
    assert not whisper_version.offline_directory().exists()
    body = page(client_for(owner), whisper_version)
    assert "The offline export failed: This version&#x27;s model files are missing" in body
    assert whisper_version.directory not in body

    weights.unlink()
    client = client_for(owner)
    response = client.get(
        reverse("model_download", args=[whisper_version.project_id, 1]), follow=True
    )
    assert MODEL_FILES_MISSING.replace("'", "&#x27;") in response.content.decode()
    response = client.post(
        reverse("model_offline_build", args=[whisper_version.project_id, 1]), follow=True
    )
    assert MODEL_FILES_MISSING.replace("'", "&#x27;") in response.content.decode()


@pytest.mark.django_db
def test_there_is_no_offline_zip_before_one_is_built(client_for, owner, whisper_version):
    response = client_for(owner).get(
        reverse("model_offline_download", args=[whisper_version.project_id, 1])
    )
    assert response.status_code == 404
    assert "Build an offline export" in page(client_for(owner), whisper_version)
