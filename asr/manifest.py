"""NeMo-style JSONL manifests: one JSON object per line with `audio_filepath`, `duration`
(seconds) and `text`. Other keys are kept as they are.

A relative `audio_filepath` is relative to the manifest's own directory, so a folder of clips
and its manifest can move together.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path


class ManifestError(ValueError):
    """The manifest cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ManifestEntry:
    audio_filepath: Path  # resolved: absolute, or relative to the working directory
    duration: float | None = None
    text: str = ""
    extra: dict = field(default_factory=dict)  # any other keys, written back unchanged


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path} line {number}: not JSON ({error.msg})") from error
        if not isinstance(row, dict) or not isinstance(row.get("audio_filepath"), str):
            raise ManifestError(f"{path} line {number}: no audio_filepath")
        audio = Path(row.pop("audio_filepath")).expanduser()
        duration = row.pop("duration", None)
        text = row.pop("text", "")
        if not isinstance(text, str):
            raise ManifestError(f"{path} line {number}: text is not a string")
        entries.append(ManifestEntry(path.parent / audio, duration, text, row))
    return entries


def write_manifest(entries: list[ManifestEntry], path: str | Path) -> None:
    """Write entries; audio paths under the manifest's directory are written relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    lines = []
    for entry in entries:
        audio = entry.audio_filepath.resolve()
        if audio.is_relative_to(base):
            audio = audio.relative_to(base)
        duration = None if entry.duration is None else round(entry.duration, 3)
        row = {"audio_filepath": str(audio), "duration": duration, "text": entry.text}
        lines.append(json.dumps(row | entry.extra, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
