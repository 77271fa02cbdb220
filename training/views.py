import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.access import project_for
from labeling.models import Clip, Role
from training import rounds, selectors, services
from training.forms import TrainingSettingsForm
from training.models import TrainingRound


def system_status(request):
    redis_error, checks = services.workers_check(timeout=4.0)
    template = "training/status.html"
    if request.htmx:
        template += "#checks"
    context = {"redis_error": redis_error, "checks": checks}
    return render(request, template, context)


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
    else:
        messages.success(
            request,
            f"Round {started.number} queued with {started.labeled_minutes:.1f} labeled minutes.",
        )
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
