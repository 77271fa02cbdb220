"""Recordings, the transcription page, review and stats: the pages of a labeling afternoon."""

import json
import math
import re
import tempfile
import uuid
from dataclasses import replace

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from asr.audio import AudioError, read_window, wav_bytes
from asr.text import text_problem
from config.body_limits import accepts_body
from labeling import boundaries, exchange, hotkeys, ingest, queue, selectors
from labeling.access import project_for
from labeling.annotations import MAX_ANNOTATION_BYTES
from labeling.boundaries import context_span
from labeling.ingest import stored_audio_path
from labeling.models import SAMPLE_RATE, Clip, Recording, Role, Transcript

MAX_FILES_PER_REQUEST = 50


# --- recordings --------------------------------------------------------------------------


def recording_list(request, project_id: int):
    project, membership = project_for(request.user, project_id, role=Role.MANAGER)
    recordings = selectors.project_recordings(project)
    context = {
        "project": project,
        "membership": membership,
        "recordings": recordings,
        "polling": any(not r.is_finished() for r in recordings),
        "limits": ingest.UploadLimits.from_settings(),
    }
    template = "labeling/recordings.html"
    if request.htmx:
        template += "#recording-table"
    return render(request, template, context)


# One file's worth per request: the page sends each file on its own, and a form without
# JavaScript may send several only up to that total (Django spools the body to disk first).
@accepts_body(ingest.one_file_body_bytes)
@require_POST
def recording_upload(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    limits = ingest.UploadLimits.from_settings()
    wants_json = "application/json" in request.headers.get("Accept", "")

    results = []
    files = request.FILES.getlist("files")
    if not files:
        results.append({"ok": False, "message": "Choose one or more audio files first."})
    elif len(files) > MAX_FILES_PER_REQUEST:
        results.append(
            {
                "ok": False,
                "message": f"At most {MAX_FILES_PER_REQUEST} files at once; nothing was kept.",
            }
        )
        files = []
    for uploaded in files:
        try:
            recording = ingest.recording_upload(
                project=project,
                uploaded=uploaded,
                user=request.user,
                limits=limits,
                speaker=request.POST.get("speaker", "").strip()[:200],
            )
        except ingest.UploadRejected as error:
            results.append({"name": uploaded.name, "ok": False, "message": str(error)})
        else:
            results.append(
                {"name": uploaded.name, "ok": True, "message": ingest.upload_outcome(recording)}
            )
    if wants_json:
        return JsonResponse({"results": results})
    for result in results:
        (messages.success if result["ok"] else messages.error)(request, result["message"])
    return redirect("recording_list", project.pk)


@require_POST
def recording_retry(request, project_id: int, recording_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    recording = get_object_or_404(Recording, pk=recording_id, project=project)
    if ingest.recording_retry(recording=recording):
        messages.success(request, f"{recording.original_name}: queued again.")
    else:
        messages.error(request, f"{recording.original_name} is not failed; nothing to retry.")
    return redirect("recording_list", project.pk)


def clip_audio(request, project_id: int, clip_id: int):
    project, _ = project_for(request.user, project_id)
    clip = get_object_or_404(Clip, pk=clip_id, project=project)
    with clip.audio.open("rb") as handle:  # a clip is at most 30 s: under 1 MB
        return audio_response(request, handle.read())


BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def audio_response(request, data: bytes) -> HttpResponse:
    """WAV bytes, answering an HTTP Range request with its part: a browser seeks in an
    <audio> (a click on the waveform, a split at the play position) only where the server
    answers ranges, and Django's FileResponse does not."""
    size = len(data)
    match = BYTE_RANGE.match(request.headers.get("Range", ""))
    status, part = 200, data
    if match and (match[1] or match[2]):
        if match[1]:
            start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
        else:  # the last N bytes
            start, end = max(size - int(match[2]), 0), size - 1
        if start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        status, part = 206, data[start : end + 1]
    response = HttpResponse(part, status=status, content_type="audio/wav")
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# --- transcription -----------------------------------------------------------------------


def _workspace(
    request, project, membership, clip, *, text=None, errors=None, saved=None, lease_token=None
):
    """Renders the page around `clip` (None: the queue is empty); it leases nothing, the
    views do (queue.clip_lease_next)."""
    is_draft = False
    if clip and text is None:
        text, is_draft = selectors.clip_prefill(clip, request.user)
    context = {
        # A refused submit keeps the lease it was written under, even if it expired and the
        # clip went to someone else since: never hand out another person's lease.
        "lease_token": lease_token or (clip.lease_token if clip else None),
        "text": text or "",
        "is_draft": is_draft,
        "is_check": bool(clip and clip.status == Clip.Status.SUBMITTED and project.second_listener),
        "undoable": selectors.last_undoable(project, request.user),
        "flags": [choice for choice in Transcript.Flag.choices if choice[0]],
    }
    return _render_workspace(request, project, membership, clip, context, errors, saved)


def _next_clip(request, project) -> Clip | None:
    """The clip the queue serves this user now, leased to them (None: the queue is empty)."""
    return queue.clip_lease_next(project=project, user=request.user)


def _render_workspace(request, project, membership, clip, context, errors, saved):
    """The transcription page (or its #workspace partial, for htmx) around `clip`: what the
    queue's clip and an earlier transcript's clip both show."""
    context_start, context_end = context_span(clip) if clip else (0, 0)
    context = {
        "project": project,
        "membership": membership,
        "clip": clip,
        "context_start": context_start / SAMPLE_RATE,
        "context_end": context_end / SAMPLE_RATE,
        "errors": errors or [],
        "saved": saved,
        "allowed_characters": selectors.allowed_characters(project),
        "queue_state": selectors.queue_state(project),
        "neighbours": selectors.clip_neighbours(clip) if clip else [],
        **_keys(request.user),
        **context,
    }
    template = "labeling/annotate.html"
    if request.htmx:
        template += "#workspace"
    return render(request, template, context, status=400 if errors and not request.htmx else 200)


def annotate(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    return _workspace(request, project, membership, _next_clip(request, project))


@require_POST
def annotate_submit(request, project_id: int, clip_id: int):
    project, membership = project_for(request.user, project_id)
    try:
        lease_token = uuid.UUID(request.POST.get("lease_token", ""))
    except ValueError:
        messages.error(request, "This form is broken (no lease); the clip was reloaded.")
        return redirect("annotate", project.pk)
    clip = Clip.objects.filter(pk=clip_id, project=project).first()
    if clip is None:
        return _recut(request, project, membership, lease_token, request.POST.get("text", ""))
    text = request.POST.get("text", "")
    flag = request.POST.get("flag", "")
    if flag not in Transcript.Flag.values:
        flag = ""
    errors = [] if flag else text_errors(text, project)
    if errors:
        return _workspace(
            request,
            project,
            membership,
            clip,
            text=text,
            errors=errors,
            lease_token=lease_token,
        )

    try:
        submission = queue.transcript_submit(
            clip=clip,
            user=request.user,
            lease_token=lease_token,
            text=text,
            flag=flag,
            seconds_spent=selectors.seconds_on_lease(clip, lease_token, project),
        )
    except Clip.DoesNotExist:  # cut again (a boundary edit) while this was on its way
        return _recut(request, project, membership, lease_token, text)
    if not submission.created:
        saved = "Already saved (sent twice); nothing was stored twice."
    elif submission.agreed:
        saved = "Agreed with the first listener: this transcript counts now."
    elif not submission.held:
        saved = "Saved for a reviewer: this clip was no longer reserved for you."
    elif submission.conflict:
        saved = "Saved. Someone else also transcribed this clip; both are kept for a reviewer."
    elif flag:
        saved = f"Flagged as “{Transcript.Flag(flag).label.lower()}”; kept out of training."
    else:
        saved = "Saved."
    if not request.htmx:
        messages.success(request, saved)
        return redirect("annotate", project.pk)
    response = _workspace(request, project, membership, _next_clip(request, project), saved=saved)
    return saved_trigger(response, str(lease_token))


def saved_trigger(response: HttpResponse, lease: str) -> HttpResponse:
    """Tells the page (an HX-Trigger event) that the text typed under `lease` is stored: it
    forgets its local copy then, and keeps it after any other answer."""
    response["HX-Trigger"] = json.dumps({"transcript-saved": {"lease": lease}})
    return response


def _keys(user) -> dict:
    """The page's keys, for the list beside the box, the dialog that changes them and the
    script that answers them."""
    bindings = hotkeys.bindings_for(user)
    return {
        "key_bindings": bindings,
        "keys_table": hotkeys.bindings_table(bindings),
        "key_choices": list(hotkeys.KEYS.items()),
        "key_shown": {action: hotkeys.KEYS[code] for action, code in bindings.items()},
    }


@require_POST
def key_bindings(request):
    """Saves the person's own keys (or resets them), then back to the page they came from."""
    if request.POST.get("reset"):
        codes = dict(hotkeys.DEFAULTS)
    else:
        codes = {
            action: request.POST[f"key_{action}"]
            for action in hotkeys.DEFAULTS
            if f"key_{action}" in request.POST
        }
    try:
        hotkeys.bindings_save(user=request.user, codes=codes)
        messages.success(request, "Your keys are saved.")
    except ValidationError as error:
        messages.error(request, error.messages[0])
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("project_list")
    return redirect(back)


def _recut(request, project, membership, lease_token, text=None):
    """A submit for a clip that a boundary edit replaced meanwhile: the text goes back in the
    box of the clip that replaced it (same lease), to be sent again; or, if there is none
    (a 404 otherwise), back to the queue."""
    recut = Clip.objects.filter(project=project, lease_user=request.user, lease_token=lease_token)
    clip = recut.select_related("recording").first()
    if clip is None:
        raise Http404("No such clip.")
    errors = ["This clip was just cut again: check its new boundaries and send it again."]
    return _workspace(
        request, project, membership, clip, text=text, errors=errors, lease_token=lease_token
    )


def text_errors(text: str, project) -> list[str]:
    """Why a transcript cannot be saved as typed (an unflagged one), for the box."""
    problem = text_problem(text, project.text_rules())
    if problem is None:
        return []
    if problem == "empty text":
        return ["Type what you hear, or flag the clip if there is nothing to type."]
    shown = problem.removeprefix("not in the alphabet: ")
    return [f"Not in this project's alphabet: {shown}  (fix them, or flag the clip)"]


def annotate_mine(request, project_id: int, transcript_id: int | None = None):
    """One of your earlier transcripts, to listen to again and edit; the newest without an id."""
    project, membership = project_for(request.user, project_id)
    mine = selectors.own_transcripts(project, request.user)
    transcript = mine.filter(pk=transcript_id).first() if transcript_id else mine.first()
    if transcript is None:  # back to new clips, saying why
        saved = "No earlier transcript of yours here still stands (undone or reviewed away)."
        return _workspace(request, project, membership, _next_clip(request, project), saved=saved)
    return _history(request, project, membership, transcript)


@require_POST
def annotate_mine_edit(request, project_id: int, transcript_id: int):
    project, membership = project_for(request.user, project_id)
    transcript = selectors.own_transcripts(project, request.user).filter(pk=transcript_id).first()
    if transcript is None:
        messages.error(request, "That is not a transcript of yours that still stands.")
        return redirect("annotate", project.pk)
    text = request.POST.get("text", "")
    errors = text_errors(text, project)
    saved, shown = None, transcript
    if not errors:
        try:
            shown = queue.transcript_edit_own(transcript=transcript, user=request.user, text=text)
        except ValidationError as error:
            errors = error.messages
        else:
            same = shown.pk == transcript.pk
            saved = "Unchanged." if same else "Saved as a new version; the earlier one is kept."
    if not request.htmx:  # without JavaScript: the message, and the version that stands
        for error in errors:
            messages.error(request, error)
        if saved:
            messages.success(request, saved)
        return redirect("annotate_mine_one", project.pk, shown.pk)
    if errors:
        return _history(request, project, membership, transcript, text=text, errors=errors)
    return saved_trigger(
        _history(request, project, membership, shown, saved=saved), f"edit-{transcript.pk}"
    )


def _history(request, project, membership, transcript, text=None, errors=None, saved=None):
    older, newer = selectors.own_older_newer(transcript)
    context = {
        "editing": transcript,
        "older": older,
        "newer": newer,
        "text": transcript.text if text is None else text,
    }
    return _render_workspace(request, project, membership, transcript.clip, context, errors, saved)


@require_POST
def annotate_skip(request, project_id: int, clip_id: int):
    project, membership = project_for(request.user, project_id)
    clip = get_object_or_404(Clip, pk=clip_id, project=project)
    try:
        lease_token = uuid.UUID(request.POST.get("lease_token", ""))
    except ValueError:
        lease_token = None
    queue.clip_skip(clip=clip, user=request.user, lease_token=lease_token)
    if not request.htmx:
        return redirect("annotate", project.pk)
    return _workspace(
        request,
        project,
        membership,
        _next_clip(request, project),
        saved="Skipped; you will not get it again.",
    )


def clip_context_audio(request, project_id: int, clip_id: int):
    """The clip with CONTEXT_SECONDS of its recording on each side, for the waveform on which
    its boundaries are moved."""
    project, _ = project_for(request.user, project_id)
    clip = get_object_or_404(Clip.objects.select_related("recording"), pk=clip_id, project=project)
    start, end = context_span(clip)
    try:
        with stored_audio_path(clip.recording.audio) as path:
            samples = read_window(path, start, end)
    except AudioError:
        raise Http404(f"{clip.recording.original_name} could not be read") from None
    return audio_response(request, wav_bytes(samples))


@require_POST
def annotate_boundaries(request, project_id: int, clip_id: int):
    """Move the clip's start or end, split it at a point or merge it with the next clip; the
    text in the box comes back with the re-cut clip."""
    project, membership = project_for(request.user, project_id)
    clip = get_object_or_404(Clip, pk=clip_id, project=project)
    text = request.POST.get("text", "")
    try:
        lease_token = uuid.UUID(request.POST.get("lease_token", ""))
    except ValueError:
        messages.error(request, "This form is broken (no lease); the clip was reloaded.")
        return redirect("annotate", project.pk)
    try:
        action = request.POST.get("action", "")
        if action == "reshape":
            start, end = (seconds_field(request.POST, name) for name in ("start", "end"))
            clip = boundaries.clip_reshape(
                clip=clip, user=request.user, lease_token=lease_token, start=start, end=end
            )
            saved = "Boundaries moved: the clip was cut again."
        elif action == "split":
            at = seconds_field(request.POST, "at")
            clip, _ = boundaries.clip_split(
                clip=clip, user=request.user, lease_token=lease_token, at=at
            )
            saved = "Split: this is the first part; the second goes to the queue."
        elif action == "merge":
            clip = boundaries.clip_merge_next(clip=clip, user=request.user, lease_token=lease_token)
            saved = "Merged with the next clip."
        else:
            raise ValidationError("Unknown edit.")
    except (ValueError, ValidationError) as error:
        why = error.messages[0] if isinstance(error, ValidationError) else "This form is broken."
        return _workspace(
            request,
            project,
            membership,
            clip,
            text=text,
            errors=[why],
            lease_token=lease_token,
        )
    return _workspace(request, project, membership, clip, text=text, saved=saved)


def seconds_field(form: QueryDict, name: str) -> int:
    """A time in the recording, in seconds, as a sample index; ValueError if it is none."""
    seconds = float(form.get(name, ""))
    if not math.isfinite(seconds):
        raise ValueError(name)
    return round(seconds * SAMPLE_RATE)


@require_POST
def annotate_unsent(request, project_id: int, clip_id: int):
    """Keeps what the lease holder has typed so far (sent by the page as they type): 204, or
    409 when the lease is no longer theirs."""
    project, _ = project_for(request.user, project_id)
    clip = get_object_or_404(Clip, pk=clip_id, project=project)
    try:
        lease_token = uuid.UUID(request.POST.get("lease_token", ""))
    except ValueError:
        return HttpResponse(status=400)
    kept = queue.lease_text_save(
        clip=clip, user=request.user, lease_token=lease_token, text=request.POST.get("text", "")
    )
    return HttpResponse(status=204 if kept else 409)


@require_POST
def annotate_later(request, project_id: int, clip_id: int):
    project, membership = project_for(request.user, project_id)
    clip = get_object_or_404(Clip, pk=clip_id, project=project)
    try:
        queue.clip_postpone(
            clip=clip, user=request.user, lease_token=uuid.UUID(request.POST.get("lease_token", ""))
        )
        saved = (
            f"Put off: it comes back to you in {queue.LATER_MINUTES} minutes with your text, "
            "unless someone else takes it meanwhile."
        )
    except (ValueError, ValidationError):
        saved = "That clip was no longer yours to put off."
    if not request.htmx:
        messages.info(request, saved)
        return redirect("annotate", project.pk)
    return _workspace(request, project, membership, _next_clip(request, project), saved=saved)


@require_POST
def annotate_undo(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    try:
        clip, undone = queue.transcript_undo_last(project=project, user=request.user)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("annotate", project.pk)
    if not request.htmx:
        return redirect("annotate", project.pk)
    return _workspace(
        request,
        project,
        membership,
        clip,
        text=undone.text,
        saved="Undone: edit and send again.",
    )


# --- review and stats --------------------------------------------------------------------


def review(request, project_id: int):
    project, membership = project_for(request.user, project_id, role=Role.REVIEWER)
    filters = selectors.ReviewFilter.from_query(request.GET)
    items = selectors.review_items(project, reviewer=request.user, filters=filters)
    page = Paginator(items, selectors.REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    hidden_mine = 0
    if not filters.mine:
        hidden_mine = (
            selectors.review_items(project).filter(author=request.user, aligned=False).count()
        )
    context = {
        "project": project,
        "membership": membership,
        "page": page,
        "items": page.object_list,
        "filters": filters,
        "shows": selectors.REVIEW_SHOWS,
        "annotators": selectors.review_annotators(project),
        "hidden_mine": hidden_mine,
        "with_mine": replace(filters, mine=True).query_string(),
        "previous": filters.query_string(page.previous_page_number())
        if page.has_previous()
        else None,
        "next": filters.query_string(page.next_page_number()) if page.has_next() else None,
    }
    return render(request, "labeling/review.html", context)


def _back_to_review(project, request):
    """The Review page with the filters it was posted from (re-encoded: never a raw URL)."""
    filters = selectors.ReviewFilter.from_query(QueryDict(request.POST.get("filters", "")))
    query = filters.query_string()
    return redirect(reverse("review", args=[project.pk]) + (f"?{query}" if query else ""))


@require_POST
def review_decide(request, project_id: int, transcript_id: int):
    project, _ = project_for(request.user, project_id, role=Role.REVIEWER)
    transcript = get_object_or_404(Transcript, pk=transcript_id, clip__project=project)
    action = request.POST.get("action")
    text = request.POST.get("text", transcript.text)
    if action not in ("accept", "reject"):
        messages.error(request, "Choose accept or reject.")
        return _back_to_review(project, request)
    if action == "accept" and not transcript.flag:
        problem = text_problem(text, project.text_rules())
        if problem:
            messages.error(request, f"Not accepted: {problem}")
            return _back_to_review(project, request)
    try:
        queue.transcript_review(
            transcript=transcript, reviewer=request.user, action=action, text=text
        )
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        verb = {"accept": "Accepted", "reject": "Rejected; the clip goes back to the queue"}[action]
        messages.success(request, f"{verb}.")
    return _back_to_review(project, request)


def stats(request, project_id: int):
    project, membership = project_for(request.user, project_id)
    total, rows = selectors.project_stats(project)
    context = {"project": project, "membership": membership, "total": total, "rows": rows}
    return render(request, "labeling/stats.html", context)


# --- import and export -------------------------------------------------------------------


def export_manifest(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    # FileResponse closes it once sent, which deletes it.
    archive = tempfile.TemporaryFile()  # noqa: SIM115
    exchange.export_manifest_zip(project, archive)
    archive.seek(0)
    name = f"{slugify(project.name) or 'project'}-labeled.zip"
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


def export_csv(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{slugify(project.name) or "project"}-labeled.csv"'
    )
    exchange.export_csv(project, response)
    return response


def export_annotations(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it: deleted)
    exchange.export_annotations_zip(project, archive)
    archive.seek(0)
    name = f"{slugify(project.name) or 'project'}-elan-praat.zip"
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


def _recording_and_transcript_bytes() -> int:
    return ingest.one_file_body_bytes() + MAX_ANNOTATION_BYTES


@accepts_body(_recording_and_transcript_bytes)
@require_POST
def import_annotated(request, project_id: int):
    """A recording with its ELAN or Praat transcript: labeled clips from one tier."""
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    audio, transcript = request.FILES.get("audio"), request.FILES.get("transcript")
    if audio is None or transcript is None:
        named = (transcript or audio).name if (transcript or audio) else ""
        messages.error(
            request,
            (f"{named}: " if named else "")
            + "choose both the recording and its ELAN (.eaf), Praat (.TextGrid) or text file.",
        )
        return redirect("recording_list", project.pk)
    try:
        recording = ingest.recording_upload(
            project=project,
            uploaded=audio,
            user=request.user,
            limits=ingest.UploadLimits.from_settings(),
            transcript=transcript,
            tier=request.POST.get("tier", ""),
        )
    except ingest.UploadRejected as error:
        messages.error(request, str(error))
    else:
        if recording.untimed_lines:
            text = (
                f"{transcript.name}: {len(recording.untimed_lines)} lines, to be aligned with "
                f"{recording.original_name} by a gpu worker."
            )
        else:
            text = (
                f"{transcript.name}: {len(recording.annotations)} annotations of tier "
                f"“{recording.tier_name}” become labeled train clips. "
                + ingest.upload_outcome(recording)
            )
        messages.success(request, text)
    return redirect("recording_list", project.pk)


@accepts_body(ingest.one_file_body_bytes)
@require_POST
def import_manifest(request, project_id: int):
    project, _ = project_for(request.user, project_id, role=Role.MANAGER)
    uploaded = request.FILES.get("archive")
    if uploaded is None:
        messages.error(request, "Choose a zip with a manifest.jsonl and its audio.")
        return redirect("recording_list", project.pk)
    limits = ingest.UploadLimits.from_settings()
    if uploaded.size > limits.max_bytes:
        messages.error(
            request, f"{uploaded.name}: over the limit of {limits.max_bytes // 2**20} MB."
        )
        return redirect("recording_list", project.pk)
    report = exchange.zip_import(
        project=project, archive_file=uploaded, user=request.user, limits=limits
    )
    if report.imported:
        messages.success(request, report.summary())
    for problem in report.problems[:20]:
        messages.error(request, f"Not imported: {problem}")
    if len(report.problems) > 20:
        messages.error(request, f"… and {len(report.problems) - 20} more rows not imported.")
    if report.stopped:
        messages.error(request, report.stopped)
    return redirect("recording_list", project.pk)
