"""Fixtures for the speech library's tests: real speech (tests/fixtures/), ffmpeg-made files."""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from asr.audio import ffmpeg_executable

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def real_speech() -> list[tuple[Path, str]]:
    """(wav path, transcript) for the BSD-2 pocketsphinx test recordings in the repository."""
    directory = REPO_ROOT / "tests" / "fixtures" / "real-speech"
    lines = (directory / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [(directory / row["audio_filepath"], row["text"]) for row in rows]


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from two threads, and on a shared 2-core machine two threads
    wait on each other: the overfit test took 80 s instead of 10 s under load."""
    import torch  # here: the text and manifest tests need no torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ffmpeg(tmp_path: Path) -> Callable[..., Path]:
    """Run ffmpeg to make a test file: ffmpeg(input args..., output name) -> path in tmp_path."""

    def run(*args: str) -> Path:
        output = tmp_path / args[-1]
        command = [ffmpeg_executable(), "-nostdin", "-v", "error", "-y", *args[:-1], str(output)]
        subprocess.run(command, check=True, capture_output=True)
        return output

    return run
