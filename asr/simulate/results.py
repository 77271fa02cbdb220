"""A simulation's results.json, shared by the processes of one run (`--jobs`): rows kept
across restarts, written under a lock and atomically, refused when the settings changed."""

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from asr.simulate.chart import learning_curves_svg


class SimulationMismatch(ValueError):
    """The output directory holds results of a simulation with other settings."""


def previous_rows(path: Path, settings: dict, config_hash: str) -> list[dict]:
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    if previous.get("config_hash") != config_hash:
        old = previous.get("config", {})
        changed = [
            f"{name} {settings.get(name)!r} here, {old.get(name)!r} there"
            for name in sorted(set(settings) | set(old))
            if settings.get(name) != old.get(name)
        ]
        raise SimulationMismatch(
            f"{path} holds a simulation with other settings ({'; '.join(changed)}): "
            "use another output directory, or delete it to start over"
        )
    return previous["rows"]


def write_results(path: Path, settings: dict, config_hash: str, rows: list[dict]) -> list[dict]:
    """Write this process's rows, keeping rows on disk that it does not hold, and the chart
    of them all: several processes may share an output directory, each running other
    strategies (`--jobs`). Returns every row."""
    with locked(path.with_name("results.lock")):
        mine = {row_key(row) for row in rows}
        theirs = [
            row for row in previous_rows(path, settings, config_hash) if row_key(row) not in mine
        ]
        every_row = rows + theirs
        document = {"config_hash": config_hash, "config": settings, "rows": every_row}
        write_atomically(path, json.dumps(document, indent=1) + "\n")
        write_atomically(path.with_name("learning_curves.svg"), learning_curves_svg(every_row))
    return every_row


def row_key(row: dict) -> tuple:
    return row["strategy"], row["seed"], row["round"]


@contextlib.contextmanager
def locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, text: str) -> None:
    """A kill while writing leaves the previous file whole (one partial file per process)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def file_sha256(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{path}: no such manifest")
    return hashlib.sha256(path.read_bytes()).hexdigest()
