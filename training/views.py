from django.shortcuts import render

from training import services


def system_status(request):
    redis_error, checks = services.workers_check(timeout=4.0)
    template = "training/status.html"
    if request.htmx:
        template += "#checks"
    context = {"redis_error": redis_error, "checks": checks}
    return render(request, template, context)
