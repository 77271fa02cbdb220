import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2ForPreTraining

from asr.audio import decode_audio
from asr.model import ctc_model_from_encoder, transcribe_clips
from asr.pretrain import PretrainConfig, pretrain_wav2vec2, random_crops, wav2vec2_config
from asr.text import TextRules, vocabulary_from_texts

TINY = PretrainConfig(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_channels=32,
    num_codevectors_per_group=16,
    codevector_dim=32,
    num_negatives=10,
    mask_prob=0.3,
    mask_length=5,
    crop_seconds=1.5,
    batch_size=4,
    learning_rate=3e-3,
    warmup_steps=5,
    max_steps=6,
)


def test_random_crops_come_from_the_recordings_and_pad_short_ones():
    rng = np.random.default_rng(0)
    long, short = np.arange(1000, dtype=np.float32), np.full(50, -1.0, np.float32)

    crops = random_crops([long, short], 40, 100, rng)

    assert crops.shape == (40, 100)
    from_long = [crop for crop in crops if crop[0] >= 0]
    assert len(from_long) > 30  # picked in proportion to length
    for crop in from_long:
        np.testing.assert_array_equal(np.diff(crop), 1.0)  # a contiguous piece
    for crop in crops[crops[:, 0] < 0]:
        assert (crop[:50] == -1).all() and (crop[50:] == 0).all()


def test_pretraining_updates_the_model_and_gives_a_fine_tunable_encoder(
    real_speech, tmp_path: Path
):
    recordings = [decode_audio(path) for path, _ in real_speech]
    torch.manual_seed(TINY.seed)
    untrained = Wav2Vec2ForPreTraining(wav2vec2_config(TINY))
    steps = []

    result = pretrain_wav2vec2(
        recordings, TINY, output_directory=tmp_path, progress=lambda step, _: steps.append(step)
    )

    assert steps == list(range(1, TINY.max_steps + 1))
    # per masked frame, the contrastive loss starts near chance: log(1 + negatives)
    assert abs(result.losses[0] - math.log(1 + TINY.num_negatives)) < 0.5
    assert np.isfinite(result.losses).all()
    before = untrained.wav2vec2.encoder.layers[0].attention.q_proj.weight
    after = result.model.wav2vec2.encoder.layers[0].attention.q_proj.weight
    assert not torch.equal(before, after)

    rules = TextRules(strip_characters=",.?!;:\"'")
    vocabulary = vocabulary_from_texts([text for _, text in real_speech], rules)
    model = ctc_model_from_encoder(tmp_path, vocabulary)
    loaded = model.network.wav2vec2.encoder.layers[0].attention.q_proj.weight
    assert torch.equal(loaded, after)
    assert model.feature_extractor.return_attention_mask
    (transcript,) = transcribe_clips(model, [recordings[0]])
    assert transcript.embedding.shape == (TINY.hidden_size,)


def test_pretraining_stops_at_its_time_budget():
    recording = np.random.default_rng(0).normal(0, 0.1, 16000 * 5).astype(np.float32)

    result = pretrain_wav2vec2([recording], replace(TINY, max_steps=10_000, max_seconds=1.0))

    assert 1 <= len(result.losses) < 10_000
    assert result.seconds < 10
