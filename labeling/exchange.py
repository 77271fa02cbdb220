"""Labeled data in and out: NeMo-style JSONL manifests (audio_filepath, duration, text) with
their audio, CSV, and ELAN / Praat files per recording. Imports validate every row and report
the ones they skip (ELAN and Praat files come in with their recording: labeling.ingest).

An export carries what training reads (`text_normalized`, next to the raw `text`), each
clip's split and status; an import keeps the split and status a manifest gives, so an
export of project A imported into a new project B has the same test and dev sets.
"""

import csv
import io
import json
import lzma
import shutil
import tempfile
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from asr.audio import SAMPLE_RATE, AudioError, decode_audio, wav_bytes
from asr.fingerprint import fingerprint
from asr.fingerprint import to_bytes as fingerprint_bytes
from asr.text import normalize_text, text_problem
from labeling.annotations import DEFAULT_TIER, Annotation, eaf_bytes, textgrid_bytes
from labeling.ingest import (
    UploadLimits,
    clip_seconds_add,
    file_sha256,
    in_users_words,
    project_fingerprints,
    same_audio_as,
)
from labeling.models import Clip, Project, Recording, Transcript
from labeling.selectors import labeled_set

CSV_COLUMNS = [
    "clip_id",
    "recording",
    "start_seconds",
    "end_seconds",
    "duration",
    "split",
    "speaker",
    "text",
    "text_normalized",
    "author",
    "status",
    "audio_filepath",
]


def _rows(transcripts: Iterable[Transcript], rules) -> Iterable[dict]:
    for transcript in transcripts:
        clip = transcript.clip
        yield {
            "audio_filepath": f"audio/{clip.pk}.wav",
            "duration": round(clip.duration_seconds, 3),
            "text": transcript.text,
            "text_normalized": normalize_text(transcript.text, rules),
            "clip_id": clip.pk,
            "recording": clip.recording.original_name,
            "start_seconds": round(clip.start_seconds, 3),
            "end_seconds": round(clip.end_seconds, 3),
            "split": clip.split or "train",
            "speaker": clip.recording.speaker,
            "author": transcript.author.username if transcript.author else "",
            "status": transcript.status,
        }


def export_manifest_zip(project: Project, target) -> int:
    """Writes manifest.jsonl and audio/<clip>.wav into a zip; returns the number of clips."""
    count = 0
    standing = labeled_set(project)  # read once: a review meanwhile must not split the export
    clips = {t.clip_id: t.clip for t in standing}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        lines = []
        for row in _rows(standing, project.text_rules()):
            with clips[row["clip_id"]].audio.open("rb") as audio:
                archive.writestr(row["audio_filepath"], audio.read())
            lines.append(json.dumps(row, ensure_ascii=False))
            count += 1
        archive.writestr("manifest.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    return count


def export_annotations_zip(project: Project, target) -> int:
    """Per recording with labeled clips: <name>.eaf (ELAN) and <name>.TextGrid (Praat), one
    tier (the one it was imported from, else "transcript") with an annotation per labeled
    clip, and the recording's audio under its own name, which the .eaf links to. Returns the
    number of recordings written."""
    by_recording: dict[int, list[Transcript]] = {}
    for transcript in labeled_set(project):
        by_recording.setdefault(transcript.clip.recording_id, []).append(transcript)
    recordings = Recording.objects.in_bulk(list(by_recording))
    used_stems: set[str] = set()
    with (
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        tempfile.TemporaryDirectory() as scratch,
    ):
        for recording_id, transcripts in sorted(by_recording.items()):
            recording = recordings[recording_id]
            stem = PurePosixPath(recording.original_name).stem or f"recording-{recording_id}"
            while stem.lower() in used_stems:  # two uploads with one name
                stem += "_"
            used_stems.add(stem.lower())
            media = stem + (PurePosixPath(recording.original_name).suffix or ".wav")
            annotations = sorted(
                (Annotation(t.clip.start_seconds, t.clip.end_seconds, t.text) for t in transcripts),
                key=lambda a: a.start,
            )
            tier = recording.tier_name or DEFAULT_TIER
            folder = Path(scratch)
            archive.writestr(f"{stem}.eaf", eaf_bytes(tier, annotations, media, folder))
            archive.writestr(
                f"{stem}.TextGrid",
                textgrid_bytes(tier, annotations, recording.duration_seconds, folder),
            )
            if recording.audio and recording.audio.storage.exists(recording.audio.name):
                with recording.audio.open("rb") as audio:
                    archive.writestr(media, audio.read())
    return len(by_recording)


# OWASP's CSV injection rule: a cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell that opens as text: a leading quote before a formula start (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(project: Project, target: io.TextIOBase) -> None:
    """The labeled set as CSV; every cell is quoted and text cells are formula-safe."""
    writer = csv.DictWriter(
        target, fieldnames=CSV_COLUMNS, extrasaction="ignore", quoting=csv.QUOTE_ALL
    )
    writer.writeheader()
    for row in _rows(labeled_set(project), project.text_rules()):
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})


# A manifest is read line by line and never whole: a 51 KB zip can hold 50 MB of "{}" lines.
MAX_MANIFEST_LINES = 100_000
MAX_LINE_CHARS = 100_000
MAX_PROBLEMS = 200  # then the import stops: a manifest this wrong needs fixing, not a list
# What reading a damaged or encrypted member raises: zipfile's own errors, and the
# decompressors' (a damaged deflate stream raises zlib.error, which is not an OSError).
ZIP_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
)


# What an imported row may say of itself; a row that says nothing is an accepted train clip.
IMPORT_SPLITS = (Clip.Split.TEST, Clip.Split.DEV, Clip.Split.TRAIN)
IMPORT_STATUSES = (Transcript.Status.ACCEPTED, Transcript.Status.SUBMITTED)


@dataclass
class ImportReport:
    imported: int = 0
    problems: list[str] = field(default_factory=list)
    stopped: str = ""  # why the rest of the manifest was not read, if it was not
    splits: Counter = field(default_factory=Counter)  # imported clips per split

    def summary(self) -> str:
        """e.g. "Imported 12 labeled clips: 3 test, 2 dev, 7 train." """
        parts = ", ".join(f"{self.splits[s]} {s}" for s in IMPORT_SPLITS if self.splits[s])
        plural = "" if self.imported == 1 else "s"
        return f"Imported {self.imported} labeled clip{plural}" + (f": {parts}." if parts else ".")


def manifest_import(
    *,
    project: Project,
    lines: Iterable[str],
    open_audio: Callable[[str], AbstractContextManager[Path]],
    user,
    limits: UploadLimits,
) -> ImportReport:
    """Imports each manifest line as one labeled clip.

    `open_audio(relative_path)` yields a local file. A row's `split` (test, dev, train) and
    `status` (accepted, submitted) are kept, as our own export writes them; a row without
    them is an accepted train clip, so that audio from elsewhere never joins the test or dev
    set unasked.
    """
    report = ImportReport()
    rules = project.text_rules()
    max_seconds = max(project.clip_max_seconds, 30.0)
    prints = project_fingerprints(project)  # read once; each imported row joins it
    for number, line in enumerate(lines, start=1):
        if number > MAX_MANIFEST_LINES:
            report.stopped = (
                f"The manifest has more than {MAX_MANIFEST_LINES:,} lines; the rest was not "
                "read (import it in parts)."
            )
            break
        if len(report.problems) >= MAX_PROBLEMS:
            report.stopped = (
                f"Stopped after {MAX_PROBLEMS} rows that could not be imported; the rest was "
                "not read. Fix the manifest and import it again."
            )
            break
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            report.problems.append(f"line {number}: over {MAX_LINE_CHARS:,} characters")
            continue
        try:
            row = json.loads(line)
            relative = str(row["audio_filepath"])
            text = str(row.get("text", ""))
            split = str(row.get("split") or Clip.Split.TRAIN)
            status = str(row.get("status") or Transcript.Status.ACCEPTED)
            # without a speaker or session, the recording it was cut from (our export writes
            # its name) is its session: one recording's clips stay one unit in the draw (two
            # files of the same name join one unit: coarser, never a leak)
            unit = row.get("speaker") or row.get("session") or row.get("recording") or ""
            speaker = str(unit)[:200]
        except (ValueError, KeyError, TypeError, AttributeError):
            report.problems.append(f"line {number}: not a JSON object with audio_filepath and text")
            continue
        where = f"line {number} ({relative})"
        if split not in IMPORT_SPLITS or status not in IMPORT_STATUSES:
            report.problems.append(
                f"{where}: split must be test, dev or train and status accepted or submitted "
                f"(not {split!r}, {status!r})"
            )
            continue
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts:
            report.problems.append(f"{where}: the path must stay inside the manifest's folder")
            continue
        if problem := text_problem(text, rules):
            report.problems.append(f"{where}: {problem}")
            continue
        try:
            with open_audio(relative) as local:
                try:
                    problem = _import_one(
                        project,
                        local,
                        relative,
                        ImportRow(text, split, status, speaker),
                        user,
                        limits,
                        max_seconds,
                        prints,
                    )
                except AudioError as error:
                    raise AudioError(in_users_words(str(error), local, relative)) from error
        except FileNotFoundError:
            problem = "no such file next to the manifest"
        except AudioError as error:
            problem = str(error).split(": ", 1)[-1]
        if problem:
            report.problems.append(f"{where}: {problem}")
        else:
            report.imported += 1
            report.splits[split] += 1
    return report


@dataclass(frozen=True)
class ImportRow:
    """What a manifest row says of its clip."""

    text: str
    split: str
    status: str
    speaker: str = ""  # its speaker or session, kept on the clip's recording


def _import_one(
    project, local: Path, name: str, row: ImportRow, user, limits, max_seconds, prints
) -> str | None:
    text, split, status = row.text, row.split, row.status
    sha256 = file_sha256(local)
    if Recording.objects.filter(project=project, sha256=sha256).exists():
        return "the same audio is in the project already; skipped"
    samples = decode_audio(local, max_seconds=limits.max_seconds)
    if len(samples) > max_seconds * SAMPLE_RATE:
        return f"{len(samples) / SAMPLE_RATE:.0f} s is too long for one clip (at most {max_seconds:.0f} s)"
    print_ = fingerprint(samples)
    index, known = prints
    twin, _ = same_audio_as(index, known, print_, len(samples) / SAMPLE_RATE)
    if twin is not None:
        return (
            f"the same audio as “{twin.original_name}” (in another format, sample rate or "
            "channel count); skipped"
        )
    with transaction.atomic(), local.open("rb") as handle:
        recording = Recording(
            project=project,
            original_name=name[:255],
            sha256=sha256,
            size_bytes=local.stat().st_size,
            duration_seconds=len(samples) / SAMPLE_RATE,
            status=Recording.Status.READY,
            progress=1.0,
            uploaded_by=user,
            ingested_at=timezone.now(),
            fingerprint=fingerprint_bytes(print_),
            speaker=row.speaker,
        )
        recording.audio.save(Path(name).name, File(handle), save=False)
        recording.save()
        index.add(recording.pk, print_)
        known[recording.pk] = recording
        clip = Clip(
            project=project,
            recording=recording,
            start_sample=0,
            end_sample=len(samples),
            split=split,
            status=Clip.Status(status),  # the clip's status words match the transcript's
        )
        clip.audio.save(
            f"clips/{project.pk}/{recording.pk}/0.wav", ContentFile(wav_bytes(samples)), save=False
        )
        clip.save()
        clip_seconds_add(recording.pk, len(samples))
        accepted = status == Transcript.Status.ACCEPTED
        Transcript.objects.create(
            clip=clip,
            author=user,
            lease_token=uuid.uuid4(),
            text=text.strip(),
            status=status,
            reviewed_by=user if accepted else None,
            reviewed_at=timezone.now() if accepted else None,
        )
    return None


def _zip_error_words(error: Exception) -> str:
    text = str(error)
    if "encrypted" in text or "password" in text:
        return "it is encrypted"
    if "CRC" in text:
        return "it is damaged: its checksum does not match"
    return "it is damaged or uses an unsupported compression"


def _manifest_lines(binary) -> Iterator[str]:
    """Lines of a UTF-8 manifest read in bounded pieces; an over-long line comes out cut to
    just past MAX_LINE_CHARS, so the caller can refuse it without holding it."""
    text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=None)
    while True:
        line = text.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            while (rest := text.readline(1 << 16)) and not rest.endswith("\n"):
                pass  # skip the remainder of this line
        yield line.rstrip("\r\n")


def zip_import(*, project: Project, archive_file, user, limits: UploadLimits) -> ImportReport:
    """A zip with a manifest (*.jsonl or *.json, one JSON object a line) and its audio.

    Every row is imported or named in the report; a damaged or encrypted member is a
    problem of its row, never an error page.
    """
    try:
        archive = zipfile.ZipFile(archive_file)
    except ZIP_MEMBER_ERRORS:
        return ImportReport(problems=["This is not a zip file (or its directory is damaged)."])
    with archive, tempfile.TemporaryDirectory() as scratch:
        manifests = [n for n in archive.namelist() if n.endswith((".jsonl", ".json"))]
        if not manifests:
            return ImportReport(problems=["The zip holds no manifest (a .jsonl file)."])
        manifest = sorted(manifests, key=lambda n: (n.count("/"), n))[0]
        base = PurePosixPath(manifest).parent

        @contextmanager
        def open_member(relative: str):
            try:
                info = archive.getinfo(str(base / relative))
            except KeyError as error:
                raise FileNotFoundError(relative) from error
            # zipfile never yields more than a member's stated size (a larger stream ends in
            # a CRC error), so checking the statement bounds the copy.
            if info.file_size > limits.max_bytes:
                raise AudioError(f"{relative}: over the limit of {limits.max_bytes // 2**20} MB")
            path = Path(scratch) / uuid.uuid4().hex
            try:
                try:
                    with archive.open(info) as source, path.open("wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                except ZIP_MEMBER_ERRORS as error:
                    words = _zip_error_words(error)
                    raise AudioError(
                        f"{relative}: could not be read from the zip ({words})"
                    ) from error
                yield path
            finally:
                path.unlink(missing_ok=True)

        broken: list[str] = []

        def manifest_lines() -> Iterator[str]:
            try:
                with archive.open(manifest) as binary:
                    yield from _manifest_lines(binary)
            except ZIP_MEMBER_ERRORS as error:
                # Damaged past some line: the rows before it stay imported or reported.
                broken.append(f"{manifest}: could not be read on ({_zip_error_words(error)})")

        report = manifest_import(
            project=project,
            lines=manifest_lines(),
            open_audio=open_member,
            user=user,
            limits=limits,
        )
        report.problems += broken
        return report


def folder_import(*, project: Project, manifest: Path, user, limits: UploadLimits) -> ImportReport:
    """A manifest on disk; audio paths are relative to the manifest's folder."""
    base = manifest.resolve().parent

    @contextmanager
    def open_file(relative: str):
        path = (base / relative).resolve()
        if not path.is_file() or base not in path.parents:
            raise FileNotFoundError(relative)
        yield path

    with manifest.open("rb") as binary:
        return manifest_import(
            project=project,
            lines=_manifest_lines(binary),
            open_audio=open_file,
            user=user,
            limits=limits,
        )
