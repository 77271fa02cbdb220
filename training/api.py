"""The JSON API: transcribe with a project's promoted model, authenticated by personal tokens.

`Authorization: Bearer <token>`; the token's user must be a member of the project (any role).
Answers are JSON, errors included.
"""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.body_limits import accepts_body
from labeling.ingest import UploadLimits, UploadRejected, one_file_body_bytes
from labeling.models import Membership
from training import transcription
from training.models import TranscriptionJob


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _authorized_membership(request, project_id: int):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None, _error(401, "Send your API token as: Authorization: Bearer <token>.")
    user = transcription.api_token_user(header.removeprefix("Bearer ").strip())
    if user is None:
        return None, _error(401, "This token is not valid (revoked, or mistyped).")
    membership = (
        Membership.objects.select_related("project")
        .filter(project_id=project_id, user=user)
        .first()
    )
    if membership is None:
        return None, _error(404, "No such project.")
    return membership, None


def _job_json(job: TranscriptionJob) -> dict:
    return {**job.as_json(), "url": reverse("api_transcription", args=[job.project_id, job.pk])}


@accepts_body(one_file_body_bytes)
@login_not_required
@csrf_exempt
@require_http_methods(["POST"])
def transcriptions(request, project_id: int):
    membership, error = _authorized_membership(request, project_id)
    if error:
        return error
    try:
        transcription.promoted_version(membership.project)  # refused before the body is read
    except ValidationError as refused:
        return _error(409, refused.messages[0])
    uploaded = request.FILES.get("audio")
    if uploaded is None:
        return _error(400, "Send the recording as a multipart file field named audio.")
    try:
        job = transcription.transcription_job_create(
            project=membership.project,
            user=membership.user,
            uploaded=uploaded,
            limits=UploadLimits.from_settings(),
        )
    except UploadRejected as rejected:
        return _error(400, str(rejected))
    except ValidationError as refused:
        return _error(409, refused.messages[0])
    return JsonResponse(_job_json(job), status=202)


@login_not_required
@csrf_exempt
@require_http_methods(["GET"])
def transcription_detail(request, project_id: int, job_id: int):
    membership, error = _authorized_membership(request, project_id)
    if error:
        return error
    job = TranscriptionJob.objects.filter(pk=job_id, project=membership.project).first()
    if job is None:
        return _error(404, "No such transcription.")
    return JsonResponse(_job_json(job))
