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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from asr.audio import (
    SAMPLE_RATE,
    AudioError,
    DecodedAudio,
    SegmentConfig,
    read_audio,
    segment_speech,
    wav_bytes,
)
from asr.fingerprint import FingerprintIndex, find_overlap, fingerprint, frame_seconds
from asr.fingerprint import from_bytes as fingerprint_from_bytes
from asr.fingerprint import to_bytes as fingerprint_bytes
from asr.text import normalize_text, text_problem
from config.dispatch import dispatch_on_commit
from labeling.annotations import (
    MAX_ANNOTATION_BYTES,
    AnnotationFileError,
    annotation_kind,
    check_fits,
    choose_tier,
    clock,
    read_tiers,
)
from labeling.models import Clip, Project, Recording, Transcript
from labeling.tasks import recording_ingest_task

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


def file_sha256(path: Path) -> str:
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


@contextmanager
def stored_audio_path(audio) -> Iterator[Path]:
    """A path ffmpeg can read for a stored file (a FileField's file): the file itself where
    storage is a local folder, else a local copy (storage may be remote: S3)."""
    try:
        local = Path(audio.path)
    except (AttributeError, NotImplementedError):  # a storage (or file) without local paths
        local = None
    if local is not None:
        yield local
        return
    with audio.open("rb") as source, tempfile.NamedTemporaryFile() as local:
        shutil.copyfileobj(source, local, 1 << 20)
        local.flush()
        yield Path(local.name)


def decode_stored(audio, name: str, max_seconds: float) -> np.ndarray:
    """A stored file decoded. Errors name the file as `name`, never a server path."""
    with stored_audio_path(audio) as path:
        try:
            return read_audio(path, max_seconds=max_seconds).samples
        except AudioError as error:
            raise AudioError(in_users_words(str(error), path, name)) from error


def recording_upload(
    *,
    project: Project,
    uploaded,
    user,
    limits: UploadLimits,
    transcript=None,
    tier: str = "",
    queue: bool = True,
    speaker: str = "",
) -> Recording:
    """Store an upload and queue its cutting into clips (`queue=False`: the caller cuts it
    with recording_ingest). With `transcript` (an uploaded ELAN .eaf or Praat TextGrid), the
    annotations of its `tier` become labeled clips and the rest of the recording is cut as
    usual; a transcript that does not fit keeps nothing."""
    with spooled_upload(uploaded, limits) as (name, path):
        sha256 = file_sha256(path)
        twin = Recording.objects.filter(project=project, sha256=sha256).first()
        failed_twin = twin if twin is not None and _failed_empty(twin) else None
        if twin and not failed_twin:
            raise UploadRejected(
                f"{name}: the same audio as “{twin.original_name}”, uploaded before; skipped."
            )
        decoded = decode_upload(path, name, limits)
        print_ = fingerprint(decoded.samples)
        repeats, repeat_notes = _repeats(project, print_, name, decoded.seconds)
        tier_name, rows, lines = "", [], []
        if transcript is not None and Path(transcript.name or "").suffix.lower() == ".txt":
            lines = _untimed_lines(project, transcript, decoded.seconds)
        elif transcript is not None:
            tier_name, rows = _transcript_rows(project, transcript, tier, name, decoded.seconds)
        with path.open("rb") as handle, transaction.atomic():
            if failed_twin is not None:  # the same file again, after it failed: it replaces it
                _failed_twin_delete(failed_twin, name)
                repeat_notes.append(
                    f"replaces the upload of “{failed_twin.original_name}” that failed"
                )
            recording = Recording(
                project=project,
                original_name=name,
                sha256=sha256,
                size_bytes=uploaded.size,
                duration_seconds=decoded.seconds,
                note="; ".join(filter(None, [decoded.damage_note(), *repeat_notes])),
                uploaded_by=user,
                tier_name=tier_name,
                annotations=rows,
                fingerprint=fingerprint_bytes(print_),
                repeats=repeats,
                untimed_lines=lines,
                speaker=speaker,
            )
            recording.audio.save(name, File(handle), save=False)
            recording.save()
            if lines:
                _queue_alignment(recording)
            elif queue:
                _queue_ingest(recording)
    return recording


SAME_AUDIO_SHARE = 0.9  # of both recordings' length: the same audio, in another encoding


def _failed_twin_delete(twin: Recording, name: str) -> None:
    """Deletes a failed recording that an upload of the same file replaces, if it is still
    failed and clipless now that its row is locked (a Retry may have started it meanwhile);
    its file goes once the replacement is committed."""
    locked = Recording.objects.select_for_update().filter(pk=twin.pk).first()
    if locked is None or not _failed_empty(locked):
        raise UploadRejected(
            f"{name}: the same audio as “{twin.original_name}”, which is being retried; skipped."
        )
    stored = locked.audio.name
    locked.delete()
    if stored:
        transaction.on_commit(lambda: locked.audio.storage.delete(stored))


def _failed_empty(recording: Recording) -> bool:
    """A recording whose ingest or alignment failed before it had any clip: uploading its
    audio again (with a right text, say) replaces it rather than being refused as a repeat."""
    return recording.status == Recording.Status.FAILED and not recording.clips.exists()


def project_fingerprints(project: Project) -> tuple[FingerprintIndex, dict[int, Recording]]:
    """The project's fingerprinted recordings, indexed (one query for all of them), leaving
    out failed ones without clips (_failed_empty)."""
    index, recordings = FingerprintIndex(), {}
    failed_empty = Q(status=Recording.Status.FAILED) & ~Exists(
        Clip.objects.filter(recording=OuterRef("pk"))
    )
    earlier = (
        project.recordings.exclude(fingerprint=b"")
        .exclude(failed_empty)
        .only("original_name", "fingerprint", "duration_seconds")
    )
    for recording in earlier:
        index.add(recording.pk, fingerprint_from_bytes(bytes(recording.fingerprint)))
        recordings[recording.pk] = recording
    return index, recordings


def recording_fingerprint_backfill(*, recording: Recording) -> bool:
    """Fingerprints a recording stored before uploads were fingerprinted, so later uploads
    of the same audio are caught. False if it has one already or its audio cannot be read."""
    if recording.fingerprint:
        return False
    try:
        samples = decode_stored(
            recording.audio, recording.original_name, UploadLimits.from_settings().max_seconds
        )
    except (AudioError, OSError, ValueError):
        return False
    updated = Recording.objects.filter(pk=recording.pk, fingerprint=b"").update(
        fingerprint=fingerprint_bytes(fingerprint(samples))
    )
    return bool(updated)


def same_audio_as(index: FingerprintIndex, recordings: dict, print_, seconds: float):
    """The earlier recording that an upload is all of (another format, rate or channel count
    of the same audio), or None; with the overlaps found with the others."""
    overlaps = []
    for key in index.candidates(print_):
        overlap = find_overlap(print_, index[key])
        if overlap is None:
            continue
        other = recordings[key]
        share_new = overlap.seconds / max(seconds, 1e-6)
        share_old = overlap.seconds / max(other.duration_seconds, 1e-6)
        if share_new >= SAME_AUDIO_SHARE and share_old >= SAME_AUDIO_SHARE:
            return other, []
        overlaps.append((other, overlap, share_old))
    return None, overlaps


def _repeats(project: Project, print_, name: str, seconds: float) -> tuple[list[dict], list[str]]:
    """The stretches of an upload that are audio of an earlier recording, and a note for the
    manager on each; UploadRejected when the upload is all of one earlier recording (another
    format, rate or channel count of the same audio)."""
    index, recordings = project_fingerprints(project)
    twin, overlaps = same_audio_as(index, recordings, print_, seconds)
    if twin is not None:
        raise UploadRejected(
            f"{name}: the same audio as “{twin.original_name}” (in another format, "
            "sample rate or channel count), uploaded before; skipped."
        )
    repeats, notes = [], []
    for other, overlap, share_old in overlaps:
        start, end = frame_seconds(overlap.new_start), frame_seconds(overlap.new_end)
        repeats.append({"start": start, "end": end, "of": other.original_name})
        where = f"{clock(start)}-{clock(end)}"
        if share_old >= SAME_AUDIO_SHARE:
            notes.append(f"contains “{other.original_name}” at {where}")
        else:
            notes.append(f"{where} repeats audio of “{other.original_name}”")
    if notes:
        notes[-1] += (
            "; the repeated audio is not cut into clips again, and this recording's clips "
            "stay out of the test and dev sets"
        )
    return repeats, notes


MAX_TEXT_BYTES = 2 * 2**20


def _untimed_lines(project: Project, transcript, seconds: float) -> list[str]:
    """The normalized utterances of an uploaded text (one a line, or whole paragraphs),
    checked against the alphabet and against what `seconds` of audio can hold; UploadRejected
    naming the file otherwise. Aligning needs a model's letters where there is one, else the
    recording's pauses (training.worker.aligner)."""
    from asr.align import MAX_LETTERS_PER_SECOND, transcript_lines

    name = Path(transcript.name or "transcript.txt").name[:200]
    if transcript.size > MAX_TEXT_BYTES:
        raise UploadRejected(f"{name}: over {MAX_TEXT_BYTES // 2**20} MB of text")
    try:
        text = b"".join(transcript.chunks()).decode("utf-8")
    except UnicodeDecodeError as error:
        raise UploadRejected(f"{name}: not UTF-8 text") from error
    rules = project.text_rules()
    lines = [normalize_text(line, rules) for line in transcript_lines(text)]
    lines = [line for line in lines if line]
    if not lines:
        raise UploadRejected(f"{name}: has no text")
    for number, line in enumerate(lines, start=1):
        if problem := text_problem(line, rules):
            raise UploadRejected(f"{name}: utterance {number}: {problem}. Nothing was kept.")
    letters = sum(len(line.replace(" ", "")) for line in lines)
    if letters > MAX_LETTERS_PER_SECOND * seconds:
        raise UploadRejected(
            f"{name}: {letters:,} letters cannot be read in {seconds:.0f} s of audio (at most "
            f"{MAX_LETTERS_PER_SECOND} a second): is it this recording's text? Nothing was kept."
        )
    return lines


def _queue_alignment(recording: Recording) -> None:
    from celery import current_app

    recording_id = recording.pk
    # by name: the task lives in the training app, which imports this one
    task = current_app.signature("training.align_recording")
    dispatch_on_commit(task, recording_id, on_unreachable=lambda why: _fail(recording_id, why))


def _transcript_rows(project: Project, transcript, tier: str, audio_name: str, seconds: float):
    """(tier name, [{start, end, text}]) of an uploaded ELAN/Praat file, every text checked
    against the project's alphabet; UploadRejected naming the file otherwise."""
    name = Path(transcript.name or "transcript").name[:200]
    if annotation_kind(name) is None:
        raise UploadRejected(f"{name}: not an ELAN (.eaf), Praat (.TextGrid) or text (.txt) file")
    rules = project.text_rules()
    max_clip = max(project.clip_max_seconds, 30.0)
    with spooled_upload(transcript, UploadLimits(MAX_ANNOTATION_BYTES, 0.0)) as (_, path):
        try:
            tier_name, annotations = choose_tier(read_tiers(path, name), tier.strip(), name)
            check_fits(annotations, seconds, name, audio_name)
        except AnnotationFileError as error:
            said = str(error)
            said += "" if said.endswith((".", "?")) else "."
            raise UploadRejected(f"{said} Nothing was kept.") from error
    problems = []
    for number, annotation in enumerate(annotations, start=1):
        if problem := text_problem(annotation.text, rules):
            problems.append(f"{number} ({problem})")
        elif annotation.end - annotation.start > max_clip:
            problems.append(f"{number} (over {max_clip:.0f} s, too long for one clip)")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        which = "annotation" if len(problems) == 1 else "annotations"
        raise UploadRejected(f"{name}, tier “{tier_name}”: {which} {shown}. Nothing was kept.")
    rows = [{"start": a.start, "end": a.end, "text": a.text} for a in annotations]
    return tier_name, rows


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
        _queue_alignment(recording) if recording.untimed_lines else _queue_ingest(recording)
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
        labeled = _annotated_clips_store(recording, samples)
        spans = segment_speech(samples, config)
        if not spans and not labeled:
            raise AudioError("no speech found in it")
        taken = list(recording.clips.values_list("start_sample", "end_sample"))
        taken += [
            (int(r["start"] * SAMPLE_RATE), int(r["end"] * SAMPLE_RATE)) for r in recording.repeats
        ]
        pieces = spans_outside(spans, taken, int(config.min_seconds * SAMPLE_RATE))
        # An annotated recording's labels are all train clips, so its open clips are too: one
        # recording (one voice, one session) never has clips on both sides of the test set.
        # A recording that repeats another's audio stays on the training side as well.
        on_train_side = labeled or recording.repeats
        split = Clip.Split.TRAIN if on_train_side else Clip.Split.UNASSIGNED
        for index, (start, end) in enumerate(pieces):
            _clip_store(recording, samples, start, end, split=split)
            if index % 10 == 0:
                Recording.objects.filter(pk=recording_id).update(progress=index / len(pieces))
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


def spans_outside(spans, taken: list[tuple[int, int]], min_samples: int) -> list[tuple[int, int]]:
    """The parts of the speech spans that no existing clip covers, each at least min_samples
    long: what is left to cut where annotations (or an earlier, interrupted ingest) made clips."""
    pieces = []
    for span in spans:
        start, end = span.start, span.end
        for taken_start, taken_end in sorted(taken):
            if taken_end <= start or taken_start >= end:
                continue
            if taken_start - start >= min_samples:
                pieces.append((start, taken_start))
            start = max(start, taken_end)
        if end - start >= min_samples:
            pieces.append((start, end))
    return pieces


def in_repeated_audio(recording: Recording, start: int, end: int) -> bool:
    """Whether most of [start, end) is audio that repeats another recording's (the spans its
    fingerprint found at upload): such a span is not made a clip, lest a test clip's audio
    train under another recording's name."""
    covered = 0
    for span in recording.repeats:
        first, last = int(span["start"] * SAMPLE_RATE), int(span["end"] * SAMPLE_RATE)
        covered += max(0, min(end, last) - max(start, first))
    return covered > (end - start) / 2


def repeated_note(skipped: int) -> str:
    if not skipped:
        return ""
    return (
        f"{skipped} of its labeled spans lie in audio that repeats another recording and were "
        "not made clips"
    )


def _annotated_clips_store(recording: Recording, samples: np.ndarray) -> int:
    """The uploaded transcript's annotations as accepted train clips, each once (a rerun
    finds them by start sample), except those in repeated audio (named in the recording's
    note). Returns how many annotations the recording has."""
    skipped = 0
    for row in recording.annotations:
        start = int(round(row["start"] * SAMPLE_RATE))
        end = min(int(round(row["end"] * SAMPLE_RATE)), len(samples))
        if in_repeated_audio(recording, start, end):
            skipped += 1
            continue
        labeled_clip_store(recording, samples, start, end, row["text"], accepted=True)
    note = repeated_note(skipped)
    if note and note not in recording.note:
        recording.note = "; ".join(filter(None, [recording.note, note]))
        Recording.objects.filter(pk=recording.pk).update(note=recording.note)
    return len(recording.annotations)


def labeled_clip_store(
    recording: Recording,
    samples: np.ndarray,
    start: int,
    end: int,
    text: str,
    accepted: bool,
    aligned: bool = False,
) -> Clip | None:
    """A train clip with its transcript, accepted or waiting for review, in one transaction
    (a labeled clip never exists without its text); None where the recording has a clip
    starting there already, or the span is under 0.1 s. `aligned`: the text was placed from
    an untimed transcript, not typed (Transcript.aligned)."""
    if end - start < SAMPLE_RATE // 10:
        return None
    status = Transcript.Status.ACCEPTED if accepted else Transcript.Status.SUBMITTED
    with transaction.atomic():
        clip = _clip_store(recording, samples, start, end, status=status, split=Clip.Split.TRAIN)
        if clip is not None:
            Transcript.objects.create(
                clip=clip,
                author=recording.uploaded_by,
                lease_token=uuid.uuid4(),
                text=text,
                status=status,
                reviewed_by=recording.uploaded_by if accepted else None,
                reviewed_at=timezone.now() if accepted else None,
                aligned=aligned,
            )
    return clip


def _clip_store(
    recording: Recording,
    samples: np.ndarray,
    start: int,
    end: int,
    status: str = Clip.Status.UNLABELED,
    split: str = Clip.Split.UNASSIGNED,
) -> Clip | None:
    """Store the clip [start, end) unless the recording has one starting there; the new clip,
    or None when it was there already."""
    if recording.clips.filter(start_sample=start).exists():
        return None
    name = f"clips/{recording.project_id}/{recording.pk}/{start}.wav"
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(wav_bytes(samples[start:end])))
    clip = Clip(
        project_id=recording.project_id,
        recording=recording,
        start_sample=start,
        end_sample=end,
        audio=stored,
        status=status,
        split=split,
    )
    try:
        with transaction.atomic():
            clip.save()
            clip_seconds_add(recording.pk, end - start)
    except IntegrityError:  # the same start, stored since the check above
        return None
    return clip


def clip_seconds_add(recording_id: int, samples: int) -> None:
    """Count `samples` more (or, negative, fewer) of clips on their recording's row, in the
    transaction that cuts them: every writer of clips calls this (Recording.clip_seconds)."""
    Recording.objects.filter(pk=recording_id).update(
        clip_seconds=F("clip_seconds") + samples / SAMPLE_RATE
    )


def _fail(recording_id: int, message: str) -> None:
    Recording.objects.filter(pk=recording_id).update(status=Recording.Status.FAILED, error=message)
