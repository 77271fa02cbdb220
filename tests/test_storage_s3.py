"""Audio in an S3-compatible bucket, for real: django-storages against moto's S3 server in
its own process, from upload through ingest and clip playback to export."""

import io
import socket
import subprocess
import sys
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.env import s3_storage
from labeling import ingest, queue
from labeling.models import Clip, Recording
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.django_db

BUCKET = "vernacular-audio"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free loopback port, as a separate process; its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(answers, timeout=60, what="the S3 server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bucket(s3_server, settings, monkeypatch, tmp_path):
    import boto3

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.MEDIA_ROOT = tmp_path / "media-must-stay-empty"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(BUCKET, s3_server, "us-east-1"),
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def object_bytes(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_upload_ingest_playback_and_export_all_go_through_the_bucket(
    bucket, client_for, owner, annotator, project, speech_recording, settings
):
    manager = client_for(owner)
    upload = SimpleUploadedFile("interview.wav", speech_recording.read_bytes(), "audio/wav")
    manager.post(reverse("recording_upload", args=[project.pk]), {"files": [upload]})
    recording = Recording.objects.get()
    assert object_bytes(bucket, recording.audio.name) == speech_recording.read_bytes()

    ingest.recording_ingest(recording_id=recording.pk)  # what the default worker runs

    recording.refresh_from_db()
    assert recording.status == "ready", recording.error
    clip = Clip.objects.filter(recording=recording).first()
    stored = object_bytes(bucket, clip.audio.name)
    assert stored[:4] == b"RIFF"
    played = client_for(annotator).get(reverse("clip_audio", args=[project.pk, clip.pk]))
    assert played.content == stored

    leased = queue.clip_lease_next(project=project, user=annotator)
    queue.transcript_submit(
        clip=leased, user=annotator, lease_token=leased.lease_token, text="habari"
    )
    exported = manager.get(reverse("export_manifest", args=[project.pk]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(exported.streaming_content)))
    leased.refresh_from_db()
    assert archive.read(f"audio/{leased.pk}.wav") == object_bytes(bucket, leased.audio.name)
    assert not settings.MEDIA_ROOT.exists()  # nothing went to the local disk
