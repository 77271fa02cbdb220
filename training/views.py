import json
import tempfile

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from config.body_limits import accepts_body
from labeling import selectors as labeling_selectors
from labeling.access import project_for
from labeling.ingest import UploadLimits, UploadRejected, one_file_body_bytes
from labeling.models import Clip, Role
from training import exports, health, rounds, selectors, transcription
from training.forms import TrainingSettingsForm
from training.models import TrainingRound


def system_status(request):
    redis_error, checks = health.workers_check(timeout=4.0)
    template = "training/status.html"
    if request.htmx:
        template += "#checks"
    context = {"redis_error": redis_error, "checks": checks}
    return render(request, template, context)


def gpu_wait(request):
    """One line on why a queued round waits, for the dashboard (it names no project)."""
    return HttpResponse(health.gpu_wait_reason(), content_type="text/plain; charset=utf-8")


def dashboard(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    rounds.rounds_reap_stale(project=project)
    round_list = list(project.rounds.select_related("version")[:50])
    active = next((r for r in round_list if r.is_active()), None)
    context = {
        "project": project,
        "membership": membership,
        "rounds": round_list,
        "active": active,
        "scoring": project.scoring_runs.first(),
        "points": selectors.curve_points(project),
        "labeled_minutes": selectors.labeled_minutes(project),
        "pool": selectors.pool_state(project),
        "activity": selectors.annotator_activity(project),
        # Outside the polled #round-status partial: computed for the whole page only.
        "split_warnings": [] if request.htmx else labeling_selectors.split_warnings(project),
        "settings_form": TrainingSettingsForm(instance=project),
        "default_base": settings.VERNACULAR_DEFAULT_BASE_MODEL,
    }
    template = "training/dashboard.html"
    if request.htmx:
        template += "#round-status"
    return render(request, template, context)


@require_POST
def round_start(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    try:
        started = rounds.round_start(project=project, user=request.user)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("dashboard", project.pk)
    started.refresh_from_db(fields=["status", "error"])  # what queueing did, Redis down or not
    if started.status == TrainingRound.Status.FAILED:
        messages.error(request, f"Round {started.number} was kept but not queued. {started.error}")
    else:
        messages.success(
            request,
            f"Round {started.number} queued with {started.labeled_minutes:.1f} labeled minutes.",
        )
    return redirect("dashboard", project.pk)


@require_POST
def round_retry(request, project_id: int, number: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    training_round = get_object_or_404(TrainingRound, project=project, number=number)
    try:
        retried = rounds.round_retry(training_round=training_round)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("dashboard", project.pk)
    training_round.refresh_from_db(fields=["status", "error"])
    if not retried:
        messages.error(request, f"Round {number} has not failed; nothing to retry.")
    elif training_round.status == TrainingRound.Status.FAILED:
        messages.error(request, f"Round {number} is still not queued. {training_round.error}")
    else:
        messages.success(request, f"Round {number} queued again.")
    return redirect("dashboard", project.pk)


@require_POST
def round_cancel(request, project_id: int, number: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    training_round = get_object_or_404(TrainingRound, project=project, number=number)
    rounds.round_cancel(training_round=training_round)
    messages.success(request, f"Round {number}: cancelling.")
    return redirect("dashboard", project.pk)


@require_POST
def training_settings(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    form = TrainingSettingsForm(request.POST, instance=project)
    if form.is_valid():
        form.save()
        messages.success(request, "Training settings saved.")
    else:
        for field, errors in form.errors.items():
            messages.error(
                request,
                f"{form.fields[field].label if field in form.fields else field}: {errors[0]}",
            )
    return redirect("dashboard", project.pk)


def model_version(request, project_id: int, number: int):
    project, membership = project_for(request.user, project_id)
    training_round = get_object_or_404(TrainingRound, project=project, number=number)
    if request.htmx and request.htmx.target == "offline-export":
        context = {"project": project, "round": training_round, "membership": membership}
        context["version"] = training_round.finished_version()
        return render(request, "training/model_version.html#offline-export", context)
    if request.htmx:
        if not training_round.is_active():
            return HttpResponseClientRefresh()  # finished: the whole page, with its results
        context = {"project": project, "round": training_round}
        return render(request, "training/model_version.html#round-progress", context)
    version = getattr(training_round, "version", None)
    rows = selectors.test_clips_worst_first(version) if version else []
    clip_ids = set(
        Clip.objects.filter(project=project, pk__in=[r["clip"] for r in rows]).values_list(
            "pk", flat=True
        )
    )
    context = {
        "project": project,
        "membership": membership,
        "round": training_round,
        "version": version,
        "rows": [r for r in rows if r["clip"] in clip_ids],
        "config": json.dumps(training_round.config, indent=1),
    }
    return render(request, "training/model_version.html", context)


def model_download(request, project_id: int, number: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    version = _round_version(project, number)
    problem = exports.model_files_problem(version)
    if problem:
        messages.error(request, problem)
        return redirect("model_version", project.pk, number)
    return _zip_response(exports.model_zip, version, f"round-{number}")


@require_POST
def model_offline_build(request, project_id: int, number: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    version = _round_version(project, number)
    problem = exports.model_files_problem(version)
    if problem:
        messages.error(request, problem)
    elif exports.offline_export_request(version=version):
        messages.success(
            request, "Building the offline export: about a minute, once a gpu worker is free."
        )
    else:
        messages.info(request, "The offline export is already being built.")
    return redirect("model_version", project.pk, number)


def model_offline_download(request, project_id: int, number: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    version = _round_version(project, number)
    if not exports.offline_export_ready(version):
        raise Http404("No offline export of this round has been built yet.")
    return _zip_response(exports.offline_zip, version, f"round-{number}-offline")


def _round_version(project, number: int):
    training_round = get_object_or_404(TrainingRound, project=project, number=number)
    version = training_round.finished_version()
    if version is None:
        raise Http404("This round has no model to download.")
    return version


def _zip_response(write_zip, version, suffix: str) -> FileResponse:
    # FileResponse closes it once sent, which deletes it.
    archive = tempfile.TemporaryFile()  # noqa: SIM115
    write_zip(version, archive)
    archive.seek(0)
    name = f"{slugify(version.project.name) or 'project'}-{suffix}.zip"
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


@accepts_body(one_file_body_bytes)
def transcribe(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    if request.method == "POST":
        try:
            transcription.promoted_version(project)
            uploaded = request.FILES.get("audio")
            if uploaded is None:
                raise ValidationError("Choose a recording first.")
            transcription.transcription_job_create(
                project=project,
                user=request.user,
                uploaded=uploaded,
                limits=UploadLimits.from_settings(),
            )
        except (UploadRejected, ValidationError) as error:
            message = error.messages[0] if isinstance(error, ValidationError) else str(error)
            messages.error(request, message)
        else:
            messages.success(request, f"{uploaded.name}: queued for transcription.")
        return redirect("transcribe", project.pk)
    jobs = project.transcription_jobs.filter(user=request.user).select_related(
        "model_version__round"
    )[:20]
    context = {
        "project": project,
        "membership": membership,
        "jobs": jobs,
        "polling": any(j.status in ("queued", "running") for j in jobs),
        "promoted": selectors.promoted_version(project),
    }
    template = "training/transcribe.html"
    if request.htmx:
        template += "#jobs"
    return render(request, template, context)


def api_tokens(request):
    new_key = None
    if request.method == "POST":
        if "revoke" in request.POST:
            revoke = request.POST.get("revoke", "")
            deleted = revoke.isdigit() and request.user.api_tokens.filter(pk=revoke).delete()[0]
            if deleted:
                messages.success(request, "Token revoked.")
            else:
                messages.error(request, "You have no such token; nothing was revoked.")
            return redirect("api_tokens")
        _, new_key = transcription.api_token_create(
            user=request.user, name=request.POST.get("name", "").strip()
        )
    context = {"tokens": request.user.api_tokens.all(), "new_key": new_key}
    return render(request, "training/api_tokens.html", context)
