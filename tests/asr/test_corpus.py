import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.corpus import (
    COMMON_SWAHILI_WORDS,
    VOICE_VARIANTS,
    CorpusConfig,
    build_lexicon,
    generate_corpus,
    plan_clip,
    read_wav,
)

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)

SMALL = CorpusConfig(seed=3, clip_count=6, clips_per_recording=3, augmented_share=0.5)


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_the_same_seed_gives_byte_identical_files(tmp_path: Path):
    generate_corpus(SMALL, tmp_path / "a")
    generate_corpus(SMALL, tmp_path / "b", workers=1)

    hashes = file_hashes(tmp_path / "a")
    assert hashes == file_hashes(tmp_path / "b")
    assert len([name for name in hashes if name.startswith("clips/")]) == 6
    assert len([name for name in hashes if name.startswith("recordings/")]) == 2


def test_another_seed_gives_another_corpus(tmp_path: Path):
    generate_corpus(SMALL, tmp_path / "a")
    generate_corpus(CorpusConfig(seed=4, clip_count=6, clips_per_recording=3), tmp_path / "b")

    texts = [
        [
            json.loads(line)["text"]
            for line in (tmp_path / d / "manifest.jsonl").read_text().splitlines()
        ]
        for d in "ab"
    ]
    assert texts[0] != texts[1]
    clip_hashes = [
        {h for name, h in file_hashes(tmp_path / d).items() if name.startswith("clips/")}
        for d in "ab"
    ]
    assert not clip_hashes[0] & clip_hashes[1]


def test_the_manifest_is_nemo_style_and_describes_the_audio(tmp_path: Path):
    summary = generate_corpus(SMALL, tmp_path)

    rows = [json.loads(line) for line in summary.manifest.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        samples = read_wav(tmp_path / row["audio_filepath"])
        assert row["duration"] == pytest.approx(len(samples) / SAMPLE_RATE, abs=1e-3)
        assert 0.5 < row["duration"] < 15
        assert 3 <= len(row["text"].split()) <= 12
        assert 0.2 < np.abs(samples).max() < 0.95  # peak-normalized, not clipped
    assert summary.seconds == pytest.approx(sum(row["duration"] for row in rows), abs=0.01)


def test_recordings_hold_their_clips_where_the_truth_says(tmp_path: Path):
    summary = generate_corpus(SMALL, tmp_path)

    truth = [json.loads(line) for line in summary.recordings_truth.read_text().splitlines()]
    assert [row["recording"] for row in truth] == ["recordings/recording_000.wav"] * 3 + [
        "recordings/recording_001.wav"
    ] * 3
    for row in truth:
        recording = read_wav(tmp_path / row["recording"])
        clip = read_wav(tmp_path / row["clip"])
        start = round(row["offset"] * SAMPLE_RATE)
        np.testing.assert_array_equal(recording[start : start + len(clip)], clip)
        assert np.abs(recording[start - 800 : start]).max() < 0.01  # a pause before each clip


def test_an_interrupted_run_resumes_without_rendering_again(tmp_path: Path):
    generate_corpus(SMALL, tmp_path)
    before = file_hashes(tmp_path)
    first_clip = sorted((tmp_path / "clips").iterdir())[0]
    first_clip.unlink()
    (tmp_path / "manifest.jsonl").unlink()
    calls = []

    summary = generate_corpus(
        SMALL, tmp_path, progress=lambda done, total: calls.append((done, total))
    )

    assert summary.rendered == 1
    assert file_hashes(tmp_path) == before
    assert calls == [(done, 6) for done in range(1, 7)]


def test_a_longer_corpus_starts_with_the_shorter_one():
    words, p = build_lexicon(SMALL)
    longer = CorpusConfig(seed=3, clip_count=60, clips_per_recording=3, augmented_share=0.5)
    assert [plan_clip(SMALL, i, words, p) for i in range(6)] == [
        plan_clip(longer, i, words, p) for i in range(6)
    ]


def test_plans_vary_voice_speed_pitch_and_degrade_about_a_third():
    config = CorpusConfig(clip_count=600)
    words, p = build_lexicon(config)

    plans = [plan_clip(config, index, words, p) for index in range(config.clip_count)]

    degraded = [plan for plan in plans if plan.augmentation]
    assert 0.28 < len(degraded) / len(plans) < 0.39
    assert {plan.augmentation for plan in degraded} == {"noise", "fast", "reverb"}
    assert {plan.voice for plan in plans} == {f"sw+{variant}" for variant in VOICE_VARIANTS}
    assert len({plan.words_per_minute for plan in plans}) > 30
    assert len({plan.pitch for plan in plans}) > 30


def test_the_lexicon_is_zipfian_swahili_like_and_fixed_by_its_seed():
    words, p = build_lexicon(CorpusConfig(lexicon_size=3000))

    assert len(set(words)) == 3000
    assert words[: len(COMMON_SWAHILI_WORDS)] == list(COMMON_SWAHILI_WORDS)
    assert p[0] / p[9] == pytest.approx((10 + 2.7) ** 1.05 / (1 + 2.7) ** 1.05)
    assert p.sum() == pytest.approx(1.0)
    assert all(word[-1] in "aeiou" for word in words[len(COMMON_SWAHILI_WORDS) :])
    assert build_lexicon(CorpusConfig(seed=9))[0] == words  # the corpus seed keeps the language
    assert build_lexicon(CorpusConfig(lexicon_seed=1))[0] != words
