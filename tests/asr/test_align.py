"""CTC forced alignment (asr.align) and `python -m asr align`."""

import json

import numpy as np
import pytest
import torch

from asr.align import (
    REVIEW_BELOW,
    AlignmentError,
    align_by_pauses,
    align_transcript,
    ctc_forced_align,
    transcript_lines,
)
from asr.audio import SAMPLE_RATE, decode_audio, write_wav
from asr.cli import main
from asr.text import TextRules, normalize_text, vocabulary_from_texts
from tests.asr.conftest import REPO_ROOT
from tests.conftest import head_trained

GAP = 12_800  # 0.8 s of quiet between utterances
RULES = TextRules(strip_characters=",.?!;:\"'")


def peaked(path: list[int], vocabulary_size: int) -> np.ndarray:
    """Log-probs (T, V) whose best token at each frame is the given one."""
    log_probs = np.full((len(path), vocabulary_size), np.log(0.01 / vocabulary_size))
    log_probs[np.arange(len(path)), path] = np.log(0.99)
    return log_probs


def test_the_viterbi_path_follows_the_peaks_and_needs_a_blank_between_repeats():
    # tokens 3 4 4 over frames: blank 3 3 blank 4 blank 4 blank
    log_probs = peaked([0, 3, 3, 0, 4, 0, 4, 0], 6)

    path = ctc_forced_align(log_probs, [3, 4, 4])

    assert path.tolist() == [-1, 0, 0, -1, 1, -1, 2, -1]
    with pytest.raises(AlignmentError):
        ctc_forced_align(peaked([3, 4], 6), [3, 4, 4])  # 4 4 needs three frames at least


def test_a_free_end_stops_where_the_window_does():
    log_probs = peaked([0, 3, 0, 4, 0, 0], 6)

    path = ctc_forced_align(log_probs, [3, 4, 5, 3], free_end=True)

    assert path.tolist()[:4] == [-1, 0, -1, 1] and max(path) <= 2


def test_it_gives_torchaudios_path_where_torchaudio_imports():
    functional = pytest.importorskip("torchaudio.functional")  # torch 2.11 builds only
    rng = np.random.default_rng(0)
    log_probs = np.log(rng.dirichlet(np.ones(8), size=60))
    targets = [3, 5, 5, 2, 7, 1]
    theirs, _ = functional.forced_align(
        torch.tensor(log_probs[None], dtype=torch.float32), torch.tensor([targets]), blank=0
    )
    ours = ctc_forced_align(log_probs, targets)
    tokens = np.where(ours >= 0, np.asarray(targets)[np.maximum(ours, 0)], 0)
    assert tokens.tolist() == theirs[0].tolist()


def test_a_whole_text_is_split_after_its_sentences():
    text = "One two three. " * 20 + "\nA short line\n\n"
    lines = transcript_lines(text, max_words=10)
    assert lines[-1] == "A short line"
    assert all(len(line.split()) <= 10 for line in lines)
    assert lines[0] == "One two three. One two three. One two three."


@pytest.fixture(scope="module")
def aligner(tmp_path_factory):
    """A small Whisper-based head trained on the ten real-speech clips until it knows them,
    and the recording of them read one after another with 0.8 s pauses."""
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperWeightsMissing,
        whisper_ctc_model,
    )

    directory = REPO_ROOT / "tests" / "fixtures" / "real-speech"
    rows = [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]
    pairs = [(directory / r["audio_filepath"], normalize_text(r["text"], RULES)) for r in rows]
    vocabulary = vocabulary_from_texts([t for _, t in pairs], RULES)
    head = WhisperCtcHeadConfig(width=128, layers=1, heads=2, ffn_width=512, dropout=0.0)
    try:
        model = whisper_ctc_model(vocabulary, head)
    except WhisperWeightsMissing as error:
        pytest.skip(f"Whisper-base weights not installed ({error})")
    clips = [decode_audio(path) for path, _ in pairs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    head_trained(model, clips, [t for _, t in pairs], 200, 3e-3)  # about 40 s on one core
    torch.set_num_threads(threads)
    pieces, speech, at = [], [], 0
    for clip in clips:
        power = np.convolve(clip**2, np.ones(320) / 320, mode="same")
        loud = np.flatnonzero(power > power.max() * 10 ** (-3.5))  # 35 dB under the peak
        speech.append(((at + loud[0]) / SAMPLE_RATE, (at + loud[-1]) / SAMPLE_RATE))
        pieces += [clip, np.zeros(GAP, np.float32)]
        at += len(clip) + GAP
    samples = np.concatenate(pieces)
    save_dir = tmp_path_factory.mktemp("aligner")
    from asr.checkpoint import save_ctc_model

    save_ctc_model(model, save_dir / "model")
    write_wav(save_dir / "reading.wav", samples)
    return model, samples, [t for _, t in pairs], speech, save_dir


def test_each_cut_falls_in_the_pause_between_two_utterances(aligner):
    model, samples, lines, speech, _ = aligner

    aligned = align_transcript(model, samples, lines)

    assert [line.text for line in aligned] == lines
    for line, (_, speech_end), (next_start, _) in zip(aligned, speech, speech[1:], strict=False):
        assert speech_end - 0.1 <= line.end_seconds <= next_start + 0.1
    assert aligned[0].start_seconds <= speech[0][0] + 0.1
    assert aligned[-1].end_seconds >= speech[-1][1] - 0.1 and aligned[-1].end_sample <= len(samples)
    assert all(line.score >= REVIEW_BELOW for line in aligned)


def test_a_wrong_line_scores_under_the_review_threshold(aligner):
    model, samples, lines, _, _ = aligner
    wrong = list(lines)
    wrong[5] = "the weather was fine and everyone went to the market"

    aligned = align_transcript(model, samples, wrong)

    assert aligned[5].score < REVIEW_BELOW < min(aligned[i].score for i in (0, 1, 2, 8, 9))


def test_more_text_than_the_audio_can_hold_is_refused(aligner):
    model, samples, lines, _, _ = aligner
    with pytest.raises(AlignmentError, match="more text than the rest of the audio can"):
        align_transcript(model, samples[: 3 * SAMPLE_RATE], lines)


def test_the_cli_writes_clips_with_scores_and_names_unknown_letters(aligner, tmp_path, capsys):
    _, _, lines, _, directory = aligner
    (tmp_path / "reading.txt").write_text("\n".join(lines) + "\n")
    command = ["align", str(directory / "reading.wav"), str(tmp_path / "reading.txt")]
    command += ["--model", str(directory / "model"), "--out", str(tmp_path / "out")]

    assert main(command) == 0

    rows = [
        json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert [row["text"] for row in rows] == lines
    assert all(row["review"] is False and row["alignment_score"] >= REVIEW_BELOW for row in rows)
    assert len(decode_audio(tmp_path / "out" / rows[0]["audio_filepath"])) > SAMPLE_RATE
    (tmp_path / "reading.txt").write_text("zebra quiz 42\n")
    capsys.readouterr()
    assert main(command) == 2
    assert "utterance 1 has letters the model does not know: 2 4" in capsys.readouterr().err


def test_with_no_model_the_cli_places_the_text_by_pauses_and_marks_every_clip_for_review(
    tmp_path, capsys
):
    directory = REPO_ROOT / "tests" / "fixtures" / "real-speech"
    rows = [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]
    pieces, ends, lines = [], [], []
    for row in rows:
        pieces += [decode_audio(directory / row["audio_filepath"]), np.zeros(GAP, np.float32)]
        ends.append(sum(len(piece) for piece in pieces) / SAMPLE_RATE)  # the pause's end
        lines.append(normalize_text(row["text"], RULES))
    write_wav(tmp_path / "reading.wav", np.concatenate(pieces))
    (tmp_path / "reading.txt").write_text("\n".join(row["text"] for row in rows))

    command = ["align", str(tmp_path / "reading.wav"), str(tmp_path / "reading.txt")]
    assert main([*command, "--out", str(tmp_path / "out")]) == 0

    written = [
        json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert [row["text"] for row in written] == lines
    assert all(row["review"] is True for row in written)
    for row, end in zip(written, ends[:-1], strict=False):  # each cut in its 0.8 s pause
        assert end - GAP / SAMPLE_RATE <= row["offset"] + row["duration"] <= end
    assert "placed by the recording's pauses" in capsys.readouterr().out


def test_by_pauses_one_line_needs_no_pause_and_too_short_audio_is_named():
    speech = np.sin(np.arange(SAMPLE_RATE) * 0.3).astype(np.float32) * 0.5
    samples = np.concatenate([np.zeros(3200, np.float32), speech, np.zeros(3200, np.float32)])

    (line,) = align_by_pauses(samples, ["one line"])

    assert line.text == "one line" and line.start_sample < 3200 < line.end_sample
    with pytest.raises(AlignmentError, match="too short"):
        align_by_pauses(np.zeros(100, np.float32), ["a"])
