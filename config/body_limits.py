"""One size check for every request body, made before anything reads it.

Django spools a multipart body to disk whole before a view runs, and CSRF checking reads it
too; so the limit is applied in middleware from Content-Length, ahead of CsrfViewMiddleware.
Views that take uploads say how much they take with `@accepts_body(...)`; every other view
takes at most DATA_UPLOAD_MAX_MEMORY_SIZE.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render


def accepts_body(max_bytes: Callable[[], int]):
    """Marks a view as taking bodies up to max_bytes() (read per request: settings change)."""

    def mark(view):
        view.max_body_bytes = max_bytes
        return view

    return mark


def _too_large(request, limit: int) -> object:
    message = f"The request is too large: at most {limit / 2**20:.1f} MB here. Nothing was kept."
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(
            {"error": message, "results": [{"ok": False, "message": message}]}, status=413
        )
    return render(request, "413.html", {"message": message}, status=413)


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django then reads no body at all
        max_bytes = getattr(view_func, "max_body_bytes", None)
        limit = max_bytes() if max_bytes else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            return _too_large(request, limit)
        return None
