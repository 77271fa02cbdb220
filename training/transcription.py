"""Using the model: transcription jobs (web side) and personal API tokens."""

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from config.dispatch import dispatch_on_commit
from labeling.ingest import UploadLimits, decode_upload, spooled_upload
from labeling.models import Project
from training import selectors
from training.models import ApiToken, ModelVersion, TranscriptionJob
from training.tasks import transcription_task


def promoted_version(project: Project) -> ModelVersion:
    """The model that transcribes uploads, or ValidationError in the uploader's words."""
    version = selectors.promoted_version(project)
    if version is None:
        raise ValidationError("This project has no promoted model yet: run a training round first.")
    return version


def transcription_job_create(
    *, project: Project, user, uploaded, limits: UploadLimits
) -> TranscriptionJob:
    version = selectors.promoted_version(project)
    with spooled_upload(uploaded, limits) as (name, path):
        decoded = decode_upload(path, name, limits)
    with transaction.atomic():
        job = TranscriptionJob(
            project=project,
            user=user,
            model_version=version,
            original_name=name,
            duration_seconds=decoded.seconds,
        )
        uploaded.seek(0)
        job.audio.save(name, uploaded, save=False)
        job.save()
        job_id = job.pk

        def unreachable(why: str) -> None:
            TranscriptionJob.objects.filter(pk=job_id).update(
                status=TranscriptionJob.Status.FAILED, error=why
            )

        dispatch_on_commit(transcription_task, job_id, on_unreachable=unreachable)
    return job


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Returns the token row and the key itself, which is never stored."""
    key = "vrn_" + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user, name=name[:100] or "token", prefix=key[:8], key_hash=_digest(key)
    )
    return token, key


def api_token_user(key: str):
    token = ApiToken.objects.select_related("user").filter(key_hash=_digest(key)).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
