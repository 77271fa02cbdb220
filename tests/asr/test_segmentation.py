import numpy as np
import pytest

from asr.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SegmentConfig,
    decode_audio,
    segment_speech,
    spans_from_probabilities,
)

FRAMES_PER_SECOND = SAMPLE_RATE / FRAME_SAMPLES


def frames(seconds: float) -> int:
    return round(seconds * FRAMES_PER_SECOND)


def probabilities(*pieces: tuple[float, float]) -> np.ndarray:
    """(seconds, speech probability) pieces -> per-frame probabilities."""
    return np.concatenate([np.full(frames(seconds), prob, np.float32) for seconds, prob in pieces])


def spans_for(probs: np.ndarray, config: SegmentConfig | None = None):
    return spans_from_probabilities(probs, len(probs) * FRAME_SAMPLES, config or SegmentConfig())


@pytest.fixture(scope="module")
def utterances_with_pauses(real_speech):
    """Ten real utterances with 1 s of silence between them, and where each one lies (seconds)."""
    pieces, truth, position = [], [], 0
    for path, _ in real_speech:
        samples = decode_audio(path)
        pieces += [samples, np.zeros(SAMPLE_RATE, np.float32)]
        truth.append((position / SAMPLE_RATE, (position + len(samples)) / SAMPLE_RATE))
        position += len(samples) + SAMPLE_RATE
    return np.concatenate(pieces), truth


@pytest.mark.parametrize("vad", ["silero", "energy"])
def test_real_utterances_come_out_as_one_clip_each(utterances_with_pauses, vad):
    samples, truth = utterances_with_pauses

    spans = segment_speech(samples, SegmentConfig(vad=vad))

    assert len(spans) == len(truth)
    for span, (start, end) in zip(spans, truth, strict=True):
        # each clip covers its utterance's speech and ends in the pauses on either side
        assert start - 0.6 < span.start_seconds < start + 0.2
        assert end - 0.2 < span.end_seconds < end + 0.6


def test_a_pure_tone_is_not_speech_to_silero():
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE)
    assert segment_speech(tone.astype(np.float32), SegmentConfig(vad="silero")) == []


def test_energy_vad_finds_tone_bursts_in_background_hiss():
    rng = np.random.default_rng(0)
    burst = 0.2 * np.sin(2 * np.pi * 300 * np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE)
    pause = np.zeros(SAMPLE_RATE)
    samples = np.concatenate([pause, burst, pause, burst, pause, burst, pause])
    samples = (samples + 0.002 * rng.standard_normal(len(samples))).astype(np.float32)

    spans = segment_speech(samples, SegmentConfig(vad="energy"))

    assert [(round(s.start_seconds), round(s.end_seconds)) for s in spans] == [
        (1, 3),
        (4, 6),
        (7, 9),
    ]


def test_offsets_index_the_source_in_samples_and_seconds():
    probs = probabilities((2, 0.0), (3, 0.9), (2, 0.0))
    config = SegmentConfig(pad_seconds=0.0)

    [span] = spans_for(probs, config)

    assert span.start == frames(2) * FRAME_SAMPLES
    assert span.end == frames(5) * FRAME_SAMPLES
    assert span.start_seconds == span.start / SAMPLE_RATE
    assert span.duration_seconds == pytest.approx(3.0, abs=0.04)


def test_padding_stops_halfway_to_the_neighbouring_clip():
    probs = probabilities((3, 0.9), (0.4, 0.0), (3, 0.9))
    config = SegmentConfig(pad_seconds=1.0, min_pause_seconds=0.3, max_seconds=6.0)

    first, second = spans_for(probs, config)

    assert first.end == second.start  # both reached the middle of the 0.4 s pause
    assert first.end_seconds == pytest.approx(3.2, abs=0.04)


def test_a_long_stretch_is_cut_at_its_quietest_moments():
    # 40 s of speech whose probability dips (but not below the end threshold) at 12 s and 26 s
    probs = probabilities((12, 0.95), (0.1, 0.4), (14, 0.95), (0.1, 0.4), (13.8, 0.95))
    config = SegmentConfig(pad_seconds=0.0, max_seconds=15.0)

    spans = spans_for(probs, config)

    cuts = [span.end_seconds for span in spans[:-1]]
    assert len(cuts) == 2
    assert 12.0 - 0.04 <= cuts[0] <= 12.1 + 0.04
    assert 26.1 - 0.04 <= cuts[1] <= 26.2 + 0.04
    assert all(span.duration_seconds <= 15.0 for span in spans)


def test_a_short_word_joins_its_nearer_neighbour():
    probs = probabilities((1, 0.0), (3, 0.9), (1.0, 0.0), (0.5, 0.9), (0.5, 0.0), (3, 0.9))
    config = SegmentConfig(pad_seconds=0.0)

    spans = spans_for(probs, config)

    assert len(spans) == 2
    assert spans[1].start_seconds == pytest.approx(5.0, abs=0.04)  # the word, then 0.5 s, then 3 s
    assert spans[1].end_seconds == pytest.approx(9.0, abs=0.04)


def test_a_lone_click_far_from_speech_is_dropped():
    probs = probabilities((5, 0.0), (0.2, 0.9), (5, 0.0), (2, 0.9), (1, 0.0))
    spans = spans_for(probs)
    assert len(spans) == 1
    assert spans[0].start_seconds == pytest.approx(10.2 - 0.15, abs=0.04)


def test_short_pauses_do_not_cut_a_sentence():
    probs = probabilities((0.5, 0.0), (2, 0.9), (0.2, 0.0), (2, 0.9), (0.5, 0.0))
    assert len(spans_for(probs, SegmentConfig(min_pause_seconds=0.3))) == 1
    assert len(spans_for(probs, SegmentConfig(min_pause_seconds=0.1, min_seconds=1.5))) == 2


@pytest.mark.parametrize("seed", range(20))
def test_clips_always_respect_the_bounds_and_stay_in_order(seed):
    rng = np.random.default_rng(seed)
    # runs of speech and silence with random lengths, probabilities and jitter
    run_lengths = rng.integers(1, 400, size=60)
    run_levels = rng.choice([0.05, 0.3, 0.6, 0.97], size=60)
    probs = np.repeat(run_levels, run_lengths) + rng.normal(0, 0.05, run_lengths.sum())
    num_samples = len(probs) * FRAME_SAMPLES + int(rng.integers(0, FRAME_SAMPLES))
    config = SegmentConfig(
        min_seconds=float(rng.uniform(0.5, 3)), max_seconds=float(rng.uniform(6, 20))
    )

    spans = spans_from_probabilities(np.clip(probs, 0, 1), num_samples, config)

    assert spans, "random speech-like input should give some clips"
    for span in spans:
        assert config.min_seconds <= span.duration_seconds <= config.max_seconds
        assert 0 <= span.start < span.end <= num_samples
    for before, after in zip(spans, spans[1:], strict=False):
        assert before.end <= after.start


def test_bounds_that_cannot_be_met_are_refused():
    with pytest.raises(ValueError):
        SegmentConfig(min_seconds=10, max_seconds=15)
    with pytest.raises(ValueError):
        SegmentConfig(min_seconds=0)
    with pytest.raises(ValueError, match="vad"):
        SegmentConfig(vad="webrtc")


def test_audio_shorter_than_a_frame_gives_no_clips():
    assert segment_speech(np.zeros(100, np.float32), SegmentConfig(vad="silero")) == []
    assert segment_speech(np.zeros(100, np.float32), SegmentConfig(vad="energy")) == []
