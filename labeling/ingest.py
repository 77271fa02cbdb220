"""Recordings in: validate an upload by decoding it, store it, and cut it into clips.

The web request decodes every upload once (extension and content type are never trusted),
so a bad file is refused while the uploader still looks at the page. The ingest task on the
`default` queue decodes again and segments; its clips are keyed by (recording, start
sample), so a re-run never duplicates them.
"""

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from asr.audio import (
    AudioError,
    DecodedAudio,
    SegmentConfig,
    read_audio,
    segment_speech,
    wav_bytes,
)
from config.dispatch import dispatch_on_commit
from labeling.models import Clip, Project, Recording

log = logging.getLogger(__name__)


class UploadRejected(Exception):
    """The message says which file and why, in words for the uploader."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_seconds: float

    @classmethod
    def from_settings(cls) -> "UploadLimits":
        return cls(
            max_bytes=settings.VERNACULAR_MAX_UPLOAD_MB * 1024 * 1024,
            max_seconds=settings.VERNACULAR_MAX_RECORDING_MINUTES * 60.0,
        )


def one_file_body_bytes() -> int:
    """The largest request body a one-file upload view reads: the file and its form."""
    return UploadLimits.from_settings().max_bytes + 1_000_000


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def spooled_upload(uploaded, limits: UploadLimits) -> Iterator[tuple[str, Path]]:
    """(the uploader's file name, a path on disk holding the upload), size checked first.

    ffmpeg reads files, not Django's upload objects; a small upload held in memory is written
    to a temporary file for the duration.
    """
    name = Path(uploaded.name or "upload").name[:200]
    if uploaded.size > limits.max_bytes:
        raise UploadRejected(
            f"{name}: {uploaded.size / 2**20:.1f} MB is over the limit of "
            f"{limits.max_bytes / 2**20:.0f} MB per file."
        )
    if hasattr(uploaded, "temporary_file_path"):
        yield name, Path(uploaded.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(delete=False, suffix=".upload") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
    try:
        yield name, Path(handle.name)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def decode_upload(path: Path, name: str, limits: UploadLimits) -> DecodedAudio:
    """The upload decoded (extension and content type are never trusted), or UploadRejected
    with a message in the uploader's words."""
    try:
        return read_audio(path, max_seconds=limits.max_seconds)
    except AudioError as error:
        raise UploadRejected(in_users_words(str(error), path, name)) from error


def in_users_words(message: str, path: Path, name: str) -> str:
    """ffmpeg and asr.audio name the (temporary) file they read, by its path inside the
    message and by its bare name at the start; the user knows it by `name`."""
    message = message.replace(str(path), name)
    if message.startswith(path.name + ":"):
        message = name + message[len(path.name) :]
    return message


def decode_stored(audio, name: str, max_seconds: float) -> np.ndarray:
    """A stored file (a FileField's file) decoded; storage may be remote (S3), so ffmpeg gets
    a local copy. Errors name the file as `name`, never the local copy."""
    with audio.open("rb") as source, tempfile.NamedTemporaryFile() as local:
        shutil.copyfileobj(source, local, 1 << 20)
        local.flush()
        try:
            return read_audio(local.name, max_seconds=max_seconds).samples
        except AudioError as error:
            raise AudioError(in_users_words(str(error), Path(local.name), name)) from error


def recording_upload(*, project: Project, uploaded, user, limits: UploadLimits) -> Recording:
    with spooled_upload(uploaded, limits) as (name, path):
        sha256 = _sha256(path)
        twin = Recording.objects.filter(project=project, sha256=sha256).first()
        if twin:
            raise UploadRejected(
                f"{name}: the same audio as “{twin.original_name}”, uploaded before; skipped."
            )
        decoded = decode_upload(path, name, limits)
        with path.open("rb") as handle, transaction.atomic():
            recording = Recording(
                project=project,
                original_name=name,
                sha256=sha256,
                size_bytes=uploaded.size,
                duration_seconds=decoded.seconds,
                note=decoded.damage_note() or "",
                uploaded_by=user,
            )
            recording.audio.save(name, File(handle), save=False)
            recording.save()
            _queue_ingest(recording)
    return recording


def upload_outcome(recording: Recording) -> str:
    """What became of a stored upload, read back after the queueing: true when Redis was down."""
    recording.refresh_from_db(fields=["status", "error"])
    text = f"{recording.original_name}: uploaded, {recording.duration_seconds / 60:.1f} min"
    if recording.note:
        text += f" ({recording.note})"
    if recording.status == Recording.Status.FAILED:
        return f"{text}, and kept; not cut into clips yet. {recording.error}"
    return f"{text}; cutting into clips."


def _queue_ingest(recording: Recording) -> None:
    from labeling.tasks import recording_ingest_task

    recording_id = recording.pk
    dispatch_on_commit(
        recording_ingest_task, recording_id, on_unreachable=lambda why: _fail(recording_id, why)
    )


@transaction.atomic
def recording_retry(*, recording: Recording) -> bool:
    """Queues a failed (or stuck) ingest again. False if it is finished."""
    stuck = [Recording.Status.FAILED, Recording.Status.INGESTING, Recording.Status.QUEUED]
    updated = Recording.objects.filter(pk=recording.pk, status__in=stuck).update(
        status=Recording.Status.QUEUED, error="", progress=0.0
    )
    if updated:
        _queue_ingest(recording)
    return bool(updated)


def recording_ingest(*, recording_id: int) -> None:
    """Decode, segment, store clips. Claims the row first: one ingest per recording at a time."""
    claimed = Recording.objects.filter(pk=recording_id, status=Recording.Status.QUEUED).update(
        status=Recording.Status.INGESTING, progress=0.0, attempts=F("attempts") + 1
    )
    if not claimed:
        log.info("recording %s is not queued; nothing to do", recording_id)
        return
    recording = Recording.objects.select_related("project").get(pk=recording_id)
    project = recording.project
    try:
        # The upload's limit, not its decoded length: a truncated file's header states more
        # than was read, and must pass here as it passed at upload.
        samples = decode_stored(
            recording.audio, recording.original_name, UploadLimits.from_settings().max_seconds
        )
        config = SegmentConfig(
            min_seconds=project.clip_min_seconds, max_seconds=project.clip_max_seconds
        )
        spans = segment_speech(samples, config)
        if not spans:
            raise AudioError("no speech found in it")
        existing = set(recording.clips.values_list("start_sample", flat=True))
        for index, span in enumerate(spans):
            if span.start not in existing:
                _clip_store(recording, samples, span.start, span.end)
            if index % 10 == 0:
                Recording.objects.filter(pk=recording_id).update(progress=index / len(spans))
    except AudioError as error:
        _fail(recording_id, f"Could not cut it into clips: {error}")
        return
    except Exception as error:
        _fail(
            recording_id,
            f"Ingest crashed ({type(error).__name__}: {error}). Retry, or tell your admin.",
        )
        raise
    Recording.objects.filter(pk=recording_id).update(
        status=Recording.Status.READY, progress=1.0, error="", ingested_at=timezone.now()
    )


def _clip_store(recording: Recording, samples: np.ndarray, start: int, end: int) -> None:
    name = f"clips/{recording.project_id}/{recording.pk}/{start}.wav"
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(wav_bytes(samples[start:end])))
    Clip.objects.bulk_create(
        [
            Clip(
                project_id=recording.project_id,
                recording=recording,
                start_sample=start,
                end_sample=end,
                audio=stored,
            )
        ],
        ignore_conflicts=True,
    )


def _fail(recording_id: int, message: str) -> None:
    Recording.objects.filter(pk=recording_id).update(status=Recording.Status.FAILED, error=message)
