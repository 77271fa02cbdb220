"""Time-aligned transcripts in the files linguists keep them in: ELAN (.eaf, read and written
with pympi-ling) and Praat TextGrids (praatio). Files in, tiers of (start, end, text) out, and
back; no database here."""

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

EAF, TEXTGRID = ".eaf", ".textgrid"
ANNOTATION_SUFFIXES = (EAF, TEXTGRID)
MAX_ANNOTATION_BYTES = 20 * 2**20  # a day of dense annotation is a few MB
DEFAULT_TIER = "transcript"
FIT_TOLERANCE_SECONDS = 0.05  # ELAN rounds to milliseconds; audio lengths differ by a frame


class AnnotationFileError(Exception):
    """What is wrong with an annotation file, in words for the uploader, naming their file."""


@dataclass(frozen=True)
class Annotation:
    start: float  # seconds
    end: float
    text: str


def annotation_kind(name: str) -> str | None:
    """EAF or TEXTGRID by the file name's suffix (what ELAN and Praat go by too), else None."""
    suffix = Path(name).suffix.lower()
    return suffix if suffix in ANNOTATION_SUFFIXES else None


def read_tiers(path: Path, name: str) -> dict[str, list[Annotation]]:
    """Every tier with time-aligned text: {tier name: annotations in time order}. Empty
    annotations are left out; a Praat point tier (no durations) is not a transcript tier."""
    kind = annotation_kind(name)
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise AnnotationFileError(f"{name}: over {MAX_ANNOTATION_BYTES // 2**20} MB")
    try:
        with _quiet():
            tiers = _read_eaf(path) if kind == EAF else _read_textgrid(path)
    except AnnotationFileError:
        raise
    except Exception as error:  # the libraries raise what their parsers raise
        program = "an ELAN" if kind == EAF else "a Praat"
        raise AnnotationFileError(
            f"{name}: not {program} file these tools can read; is it damaged or empty?"
        ) from error
    return {tier: sorted(rows, key=lambda a: a.start) for tier, rows in tiers.items() if rows}


def _read_eaf(path: Path) -> dict[str, list[Annotation]]:
    from pympi.Elan import Eaf

    eaf = Eaf(str(path), suppress_version_warning=True)
    tiers = {}
    for tier in eaf.get_tier_names():
        rows = []
        for start, end, value, *_ in eaf.get_annotation_data_for_tier(tier):
            if str(value).strip():
                rows.append(Annotation(start / 1000, end / 1000, " ".join(str(value).split())))
        tiers[tier] = rows
    return tiers


def _read_textgrid(path: Path) -> dict[str, list[Annotation]]:
    from praatio import textgrid

    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    tiers = {}
    for tier_name in grid.tierNames:
        tier = grid.getTier(tier_name)
        if tier.tierType != textgrid.INTERVAL_TIER:
            continue
        tiers[tier_name] = [
            Annotation(float(start), float(end), " ".join(label.split()))
            for start, end, label in tier.entries
            if label.strip()
        ]
    return tiers


def choose_tier(
    tiers: dict[str, list[Annotation]], wanted: str, name: str
) -> tuple[str, list[Annotation]]:
    """The tier the uploader named, or the only one there is."""
    if not tiers:
        raise AnnotationFileError(f"{name}: has no tier with time-aligned text")
    listed = ", ".join(f"“{tier}”" for tier in tiers)
    if wanted:
        if wanted not in tiers:
            raise AnnotationFileError(f"{name}: has no tier “{wanted}” with text; it has {listed}")
        return wanted, tiers[wanted]
    if len(tiers) > 1:
        raise AnnotationFileError(
            f"{name}: has {len(tiers)} tiers with text ({listed}); name the one to import"
        )
    return next(iter(tiers.items()))


def check_fits(annotations: list[Annotation], seconds: float, name: str, audio_name: str) -> None:
    """Every annotation inside the recording, with a positive length."""
    for number, annotation in enumerate(annotations, start=1):
        if annotation.end <= annotation.start:
            raise AnnotationFileError(
                f"{name}: annotation {number} ({clock(annotation.start)}) has no duration"
            )
        if annotation.end > seconds + FIT_TOLERANCE_SECONDS:
            raise AnnotationFileError(
                f"{name}: annotation {number} ends at {clock(annotation.end)}, after the end "
                f"of {audio_name} ({clock(seconds)}); is it the right recording?"
            )


def clock(seconds: float) -> str:
    """1:02.5, as people read a position in a recording."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def eaf_bytes(tier: str, annotations: list[Annotation], media_name: str, scratch: Path) -> bytes:
    """An ELAN file with one tier, linked to the audio file beside it."""
    from pympi.Elan import Eaf

    eaf = Eaf(author="Vernacular")
    eaf.remove_tier("default")  # pympi starts every file with an empty tier of that name
    eaf.add_tier(tier)
    for annotation in annotations:
        start, end = round(annotation.start * 1000), round(annotation.end * 1000)
        eaf.add_annotation(tier, start, end, annotation.text)
    eaf.add_linked_file(media_name, relpath=media_name, mimetype=_mimetype(media_name))
    path = scratch / "transcript.eaf"
    with _quiet():
        eaf.to_file(str(path))
    return path.read_bytes()


def textgrid_bytes(
    tier: str, annotations: list[Annotation], seconds: float, scratch: Path
) -> bytes:
    """A Praat TextGrid (long format) with one interval tier spanning the recording."""
    from praatio import textgrid

    end = max([seconds, *(a.end for a in annotations)])
    entries = [(a.start, a.end, a.text) for a in annotations]
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier(tier, entries, 0.0, end))
    path = scratch / "grid.TextGrid"
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")
    return path.read_bytes()


def _mimetype(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    return {"wav": "audio/x-wav", "mp3": "audio/mpeg", "ogg": "audio/ogg"}.get(suffix, "audio/*")


@contextlib.contextmanager
def _quiet():
    """pympi prints warnings about versions to stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
