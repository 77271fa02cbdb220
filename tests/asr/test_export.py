"""The offline export (asr.export): ONNX files and a runner that need nothing of ours."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch

from asr.audio import decode_audio
from asr.export import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    RUNNER_SOURCE,
    export_offline,
    export_onnx,
)
from asr.lm import language_model_decode
from asr.model import build_tiny_ctc_model, transcribe_clips
from asr.text import Vocabulary

pytest.importorskip("onnxruntime")


def run_isolated(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The runner in a process that cannot import our code (-I: no cwd, no PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-I", str(folder / "transcribe.py"), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )


def texts_by_name(stdout: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in stdout.splitlines())


@pytest.fixture(scope="module")
def offline_folder(trained_whisper_model, tmp_path_factory):
    model, directory, pairs = trained_whisper_model
    folder = tmp_path_factory.mktemp("offline")
    export_offline(model, folder, directory)
    return folder


def test_the_runner_writes_the_apps_greedy_text_and_imports_nothing_of_ours(
    trained_whisper_model, offline_folder
):
    model, _, pairs = trained_whisper_model
    expected = transcribe_clips(model, [decode_audio(path) for path, _ in pairs])
    assert sum(
        jiwer.cer(text, t.text) for (_, text), t in zip(pairs, expected, strict=True)
    ) < 0.45 * len(pairs), "the fixture model should be trained far enough that its drafts are text"
    assert (
        "from asr" not in RUNNER_SOURCE.read_text()
        and "import asr" not in RUNNER_SOURCE.read_text()
    )

    run = run_isolated(offline_folder, "--model", "model.onnx", *(str(p) for p, _ in pairs))

    assert run.returncode == 0, run.stderr[-2000:]
    got = texts_by_name(run.stdout)
    assert got == {path.name: t.text for (path, _), t in zip(pairs, expected, strict=True)}


def test_the_runners_lm_search_writes_the_apps_lm_text(trained_whisper_model, offline_folder):
    model, directory, pairs = trained_whisper_model
    decode = language_model_decode(directory, model.vocabulary)
    expected = transcribe_clips(model, [decode_audio(path) for path, _ in pairs], decode=decode)

    run = run_isolated(
        offline_folder, "--lm", "--model", "model.onnx", *(str(path) for path, _ in pairs)
    )

    assert run.returncode == 0, run.stderr[-2000:]
    assert texts_by_name(run.stdout) == {
        path.name: t.text for (path, _), t in zip(pairs, expected, strict=True)
    }


def test_the_int8_model_is_under_a_third_of_the_size_and_reads_nearly_the_same(
    trained_whisper_model, offline_folder
):
    _, _, pairs = trained_whisper_model
    files = [str(path) for path, _ in pairs]
    fp32 = texts_by_name(run_isolated(offline_folder, "--model", ONNX_FILE, *files).stdout)
    run = run_isolated(offline_folder, *files)  # int8 is the runner's default

    assert run.returncode == 0, run.stderr[-2000:]
    int8 = texts_by_name(run.stdout)
    assert jiwer.cer(list(fp32.values()), [int8[name] for name in fp32]) < 0.05
    size = (offline_folder / ONNX_INT8_FILE).stat().st_size
    assert size < (offline_folder / ONNX_FILE).stat().st_size / 3


def test_the_runner_reads_stereo_44k_audio_and_says_which_file_it_cannot_read(
    trained_whisper_model, offline_folder, ffmpeg, tmp_path
):
    model, _, pairs = trained_whisper_model
    path = pairs[5][0]
    stereo = ffmpeg("-i", str(path), "-ac", "2", "-ar", "44100", "stereo.wav")
    (tmp_path / "notes.wav").write_bytes(b"RIFF not really")
    texts = texts_by_name(run_isolated(offline_folder, str(path), str(stereo)).stdout)
    assert jiwer.cer(texts[path.name], texts["stereo.wav"]) < 0.1

    run = run_isolated(
        offline_folder, str(tmp_path / "notes.wav"), str(tmp_path / "gone.wav"), str(path)
    )
    assert run.returncode == 2
    assert "notes.wav: cannot read it as audio" in run.stderr and "Traceback" not in run.stderr
    assert f"{tmp_path / 'gone.wav'}: no such file" in run.stderr
    assert run.stdout == f"{path.name}\t{texts[path.name]}\n"  # the readable one still runs


def test_long_audio_is_cut_into_windows_at_its_quietest_moments():
    spec = importlib.util.spec_from_file_location("runner", RUNNER_SOURCE)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.3, 16_000 * 70).astype(np.float32)
    quiet = [int(16_000 * 27.2), int(16_000 * 54.0)]
    for start in quiet:
        samples[start : start + 3200] *= 0.001
    settings = {"sample_rate": 16_000, "max_samples": 30 * 16_000, "min_samples": 1600}

    pieces = runner.windows(samples, settings)

    assert np.array_equal(np.concatenate(pieces), samples)
    assert all(len(piece) <= settings["max_samples"] for piece in pieces)
    cuts = np.cumsum([len(piece) for piece in pieces])[:-1]
    assert all(start <= cut <= start + 3200 for cut, start in zip(cuts, quiet, strict=True))


def test_a_wav2vec2_model_exports_with_its_normalization(tmp_path, real_speech):
    vocabulary = Vocabulary(("[PAD]", "[UNK]", "|", *"abcdefghijklmnopqrstuvwxyz"))
    model = build_tiny_ctc_model(vocabulary)
    export_onnx(model, tmp_path / "tiny.onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx"))
    for path, _ in real_speech[:3]:
        samples = decode_audio(path)
        features = model.feature_extractor(samples, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            expected = torch.log_softmax(model.network(features["input_values"]).logits, -1)
        got = session.run(["log_probs"], {"audio": samples[None, :]})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected.numpy()).max() < 1e-3
