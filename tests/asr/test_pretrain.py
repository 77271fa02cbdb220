import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForPreTraining

from asr.audio import SAMPLE_RATE, decode_audio
from asr.model import ctc_model_from_encoder, transcribe_clips
from asr.pretrain import (
    PretrainConfig,
    PretrainingCancelled,
    pretrain_wav2vec2,
    random_crops,
    wav2vec2_config,
)
from asr.text import TextRules, vocabulary_from_texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/asr/conftest.py says why

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


@pytest.fixture(scope="module")
def recordings(real_speech) -> list[np.ndarray]:
    return [decode_audio(path) for path, _ in real_speech]


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
    real_speech, recordings, tmp_path: Path
):
    torch.manual_seed(TINY.seed)
    untrained = Wav2Vec2ForPreTraining(wav2vec2_config(TINY))
    steps = []

    result = pretrain_wav2vec2(
        recordings, TINY, output_directory=tmp_path, progress=lambda report: steps.append(report)
    )

    assert [report.step for report in steps] == list(range(1, TINY.max_steps + 1))
    assert steps[-1].eta_seconds == 0 and steps[0].loss == result.losses[0]
    # per masked frame, the contrastive loss starts near chance: log(1 + negatives)
    assert abs(result.contrastive_losses[0] - math.log(1 + TINY.num_negatives)) < 0.5
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


def test_pretraining_loss_falls_on_a_few_real_clips_without_codebook_collapse(recordings):
    # Four real clips exactly one crop long: every batch comes from the same 1.5 s pieces
    # (masks, negatives and Gumbel noise still differ per step), so the model can learn them.
    crop = int(TINY.crop_seconds * SAMPLE_RATE)
    clips = [recording[:crop] for recording in recordings if len(recording) >= crop][:4]
    # Checked by hand on seeds 0-7 (about 9 s each on one thread): the contrastive loss fell to
    # 0.31-0.44 of its start, the perplexity rose from 12-21 to 28-30 (of 32). A diversity weight
    # of 5x wav2vec 2.0's 0.1 keeps the tiny codebook from collapsing: at 0.1, in a variant with
    # mask_prob 0.15, 32 codevectors a group and a faster Gumbel decay, seed 7 collapsed
    # (perplexity 2 of 64, loss 0.2).
    config = replace(TINY, diversity_loss_weight=0.5, warmup_steps=20, max_steps=150)

    result = pretrain_wav2vec2(clips, config)

    def first_and_last(values: list[float]) -> tuple[float, float]:
        return float(np.mean(values[:10])), float(np.mean(values[-10:]))

    contrastive_first, contrastive_last = first_and_last(result.contrastive_losses)
    loss_first, loss_last = first_and_last(result.losses)
    perplexity_first, perplexity_last = first_and_last(result.perplexities)
    assert contrastive_first > math.log(1 + config.num_negatives) - 0.3  # starts near chance
    assert contrastive_last < 0.7 * contrastive_first
    assert loss_last < 0.7 * loss_first
    # a collapsing codebook lowers the contrastive loss too (negatives equal to the positive
    # drop out of its softmax), without anything learned: the codebook must be in wider use
    assert perplexity_last > perplexity_first


def test_a_cancelled_run_resumes_to_the_losses_and_weights_of_an_uninterrupted_one(
    recordings, tmp_path: Path
):
    config = replace(TINY, max_steps=8, checkpoint_every=3)
    uninterrupted = pretrain_wav2vec2(recordings, config)
    checkpoint_path = tmp_path / "checkpoint.pt"
    saved_at_step_4 = []  # the step of the checkpoint on disk when step 4 is done

    def look_at_step_4(report) -> None:
        if report.step == 4:
            saved_at_step_4.append(torch.load(checkpoint_path, weights_only=True)["step"])

    with pytest.raises(PretrainingCancelled) as cancelled:
        pretrain_wav2vec2(
            recordings,
            config,
            tmp_path,
            progress=look_at_step_4,
            should_cancel=lambda: bool(saved_at_step_4),
        )
    assert saved_at_step_4 == [3]  # every checkpoint_every steps
    assert cancelled.value.step == 4
    assert not (tmp_path / "model.safetensors").exists()  # the model is written at the end

    resumed = pretrain_wav2vec2(recordings, config, tmp_path)

    torch.testing.assert_close(resumed.losses, uninterrupted.losses, rtol=0, atol=1e-6)
    torch.testing.assert_close(resumed.perplexities, uninterrupted.perplexities, rtol=0, atol=1e-5)
    torch.testing.assert_close(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert torch.load(checkpoint_path, weights_only=True)["step"] == 8


def test_a_checkpoint_of_other_settings_is_refused_and_a_longer_run_continues_it(
    recordings, tmp_path: Path
):
    first = pretrain_wav2vec2(recordings, replace(TINY, max_steps=3), tmp_path)

    with pytest.raises(ValueError, match="learning_rate 0.001 here, 0.003 there"):
        pretrain_wav2vec2(recordings, replace(TINY, max_steps=3, learning_rate=1e-3), tmp_path)
    with pytest.raises(ValueError, match="recordings '3 recordings"):
        pretrain_wav2vec2(recordings[:3], replace(TINY, max_steps=3), tmp_path)
    longer = pretrain_wav2vec2(recordings, replace(TINY, max_steps=5), tmp_path)

    assert len(longer.losses) == 5 and longer.losses[:3] == first.losses


def test_the_time_budget_counts_earlier_sessions(recordings, tmp_path: Path):
    with pytest.raises(PretrainingCancelled):
        pretrain_wav2vec2(recordings, TINY, tmp_path, should_cancel=lambda: True)
    spent = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["seconds"]

    result = pretrain_wav2vec2(recordings, replace(TINY, max_seconds=spent), tmp_path)

    assert len(result.losses) == 1  # the budget was spent in the first session
    assert result.seconds >= spent


def test_pretraining_stops_at_its_time_budget():
    recording = np.random.default_rng(0).normal(0, 0.1, 16000 * 5).astype(np.float32)

    result = pretrain_wav2vec2([recording], replace(TINY, max_steps=10_000, max_seconds=1.0))

    assert 1 <= len(result.losses) < 10_000
    assert result.seconds < 10
