"""The round recipe: collapse and recovery, the LM and promotion decisions, self-training."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from asr.checkpoint import save_ctc_model
from asr.finetune import Batch, FinetuneConfig, ctc_loss, finetune
from asr.model import ClipTranscript, build_tiny_ctc_model
from asr.recipe import RoundConfig
from asr.round import (
    ModelSource,
    PoolDraft,
    RoundData,
    beats,
    choose_pseudo_threshold,
    draft_confidence,
    pick_pseudo_labels,
    recovery_plan,
    run_round,
)
from asr.text import TextRules, vocabulary_from_texts
from asr.whisper import _span_mask
from tests.asr.test_evaluate import model_that_always_says

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCABULARY = vocabulary_from_texts(["ab"], TextRules())


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32)


def model_that_always_writes(token: str):
    """A tiny model whose head writes `token` at every frame; "[PAD]", the CTC blank, is the
    blank plateau: nothing written at all."""
    return model_that_always_says(token, VOCABULARY)


class StuckHeads(ModelSource):
    """Every new head starts (and, at a learning rate near 0, stays) at the blank plateau."""

    def fresh(self, seed: int):
        return model_that_always_writes("[PAD]")


CLIPS = [(noise(1.0, seed), "a") for seed in range(4)]
STUCK = RoundConfig(
    max_steps=4, batch_size=2, learning_rate=1e-12, warmup_steps=0, eval_every=1, lm_order=0
)


def test_a_head_stuck_at_the_blank_plateau_is_retried_from_the_promoted_model(tmp_path):
    promoted = tmp_path / "promoted"
    save_ctc_model(model_that_always_writes("a"), promoted)  # dev CER 0 on "a"
    lines = []

    result = run_round(
        RoundData(train=CLIPS[:2], dev=CLIPS[2:], test=CLIPS[2:]),
        STUCK,
        tmp_path / "round",
        StuckHeads("builtin:tiny", VOCABULARY),
        promoted_dir=promoted,
        start_from_promoted=False,
        log=lines.append,
    )

    first, second = result.attempts
    assert first["start"] == "fresh" and first["best_dev_cer"] == 1.0
    assert first["collapsed"].startswith("stuck: best dev CER 1.00 at step 2")
    assert first["steps"] == 2  # stopped at the check (40% of 4 steps), not trained on
    assert second["start"] == "promoted" and not second["collapsed"]
    assert second["learning_rate"] == pytest.approx(STUCK.learning_rate / 3)
    assert result.recovered and result.dev_cer == 0.0
    assert result.model_dir == tmp_path / "round" / "retry-1" / "model"
    assert any(line.startswith("attempt 1 (from a new head") for line in lines)
    assert "recovered: attempt 2 is kept" in lines
    assert result.summary()["recovered"] is True
    assert not result.promote  # it ties the promoted model on dev: no better


def test_when_every_attempt_collapses_the_best_is_kept_and_not_promoted(tmp_path):
    lines = []
    result = run_round(
        RoundData(train=CLIPS[:2], dev=CLIPS[2:], test=CLIPS[2:]),
        STUCK,
        tmp_path,
        StuckHeads("builtin:tiny", VOCABULARY),
        log=lines.append,
    )
    assert [(a["start"], a["seed"]) for a in result.attempts] == [
        ("fresh", 0),
        ("fresh", 1),
        ("fresh", 2),
    ]
    assert all(a["collapsed"] for a in result.attempts)
    assert not result.promote and not result.recovered
    assert "every attempt collapsed; attempt 1 is kept, and not promoted" in lines


def test_a_loss_that_is_not_finite_stops_the_run_as_diverged(tmp_path):
    damaged = [(np.full(16000, np.nan, np.float32), "ab")] * 2
    result = finetune(
        build_tiny_ctc_model(VOCABULARY),
        damaged,
        [],
        tmp_path,
        FinetuneConfig(max_steps=20, batch_size=2, warmup_steps=0, eval_every=50),
    )
    assert result.collapsed == "diverged: the loss was not finite from step 1 on"
    assert result.steps == 3


def test_the_recovery_plan_lowers_the_rate_and_tries_the_promoted_model_once():
    config = RoundConfig(learning_rate=0.009, seed=5, recovery_attempts=2)
    assert recovery_plan(config, has_promoted=True, start_from_promoted=False) == [
        ("fresh", 5, 0.009),
        ("promoted", 6, pytest.approx(0.003)),
        ("fresh", 7, pytest.approx(0.001)),
    ]
    from_promoted = recovery_plan(config, has_promoted=True, start_from_promoted=True)
    assert [start for start, _, _ in from_promoted] == ["promoted", "fresh", "fresh"]
    assert recovery_plan(RoundConfig(recovery_attempts=0), False, True) == [("fresh", 0, 1e-4)]


def test_promotion_needs_a_lower_cer_than_the_promoted_model():
    assert beats(0.10, None) and beats(0.10, 0.11)
    assert not beats(0.11, 0.11) and not beats(0.12, 0.11)


def test_a_drafts_confidence_is_the_geometric_mean_of_its_tokens():
    def transcript(confidences):
        return ClipTranscript("x", confidences, 0.0, 0.0, 0.0, np.zeros(1))

    assert draft_confidence(transcript([0.5, 0.5])) == pytest.approx(0.5)
    assert draft_confidence(transcript([1.0, 0.25])) == pytest.approx(0.5)
    assert draft_confidence(transcript([])) == 0.0


def test_the_threshold_is_the_lowest_confidence_whose_dev_drafts_stay_under_the_cer():
    confidences = [0.99, 0.95, 0.90, 0.60]
    errors = [(0, 10), (1, 10), (1, 10), (8, 10)]  # edits, reference characters
    # from the top: 0/10, 1/20, 2/30 (6.7%), then 10/40 (25%)
    assert choose_pseudo_threshold(confidences, errors, 0.07) == 0.90
    assert choose_pseudo_threshold(confidences, errors, 0.05) == 0.95
    assert choose_pseudo_threshold([0.9], [(5, 10)], 0.05) is None


def test_pseudo_labels_are_the_confident_drafts_with_words_up_to_the_minutes():
    pool = [
        PoolDraft(np.zeros(16000), "low", 0.5),
        PoolDraft(np.zeros(16000), "best", 0.99),
        PoolDraft(np.zeros(16000), "  ", 0.98),  # confident silence: nothing to learn
        PoolDraft(np.zeros(16000), "good", 0.9),
        PoolDraft(np.zeros(16000), "also", 0.8),
    ]
    assert [d.text for d in pick_pseudo_labels(pool, 0.8, 10)] == ["best", "good", "also"]
    assert [d.text for d in pick_pseudo_labels(pool, 0.8, 2.5)] == ["best", "good"]
    assert pick_pseudo_labels(pool, None, 10) == []


def test_self_training_adds_the_confident_pool_drafts_weighted_and_logs_them(tmp_path):
    promoted = tmp_path / "promoted"
    save_ctc_model(model_that_always_writes("a"), promoted)  # its dev drafts are all right
    pool = [PoolDraft(noise(1.0, 10 + i), "a", 0.99 - 0.1 * i) for i in range(3)]
    config = RoundConfig(
        max_steps=2, batch_size=2, warmup_steps=0, lm_order=0, recovery_attempts=0,
        self_train=True, pseudo_max_ratio=1.0,
    )  # fmt: skip
    lines = []

    result = run_round(
        RoundData(train=CLIPS[:2], dev=CLIPS[2:], test=CLIPS[2:], pool=pool),
        config,
        tmp_path / "round",
        ModelSource("builtin:tiny", VOCABULARY),
        promoted_dir=promoted,
        log=lines.append,
    )

    # the always-"a" model is sure of every dev draft (confidence 1.0) and right: threshold 1.0
    assert result.pseudo_threshold == pytest.approx(1.0)
    assert result.pseudo_clips == 0 and result.pseudo_minutes == 0  # no pool draft is that sure
    sure = [PoolDraft(noise(1.0, 20 + i), "a", 1.0) for i in range(3)]
    result = run_round(
        RoundData(train=CLIPS[:2], dev=CLIPS[2:], test=CLIPS[2:], pool=sure),
        config,
        tmp_path / "round-2",
        ModelSource("builtin:tiny", VOCABULARY),
        promoted_dir=promoted,
        log=lines.append,
    )
    assert result.pseudo_clips == 2  # up to the labeled minutes (pseudo_max_ratio 1)
    assert result.pseudo_minutes == pytest.approx(2 / 60)
    assert result.summary()["pseudo_minutes"] == pytest.approx(0.03)
    assert any(line.startswith("self-training: 2 pool clips (0.0 min)") for line in lines)


def test_a_clip_weighted_zero_adds_nothing_to_the_loss():
    model = build_tiny_ctc_model(VOCABULARY)
    network = model.network.eval()
    features = model.feature_extractor(
        [noise(1.0, 0), noise(1.0, 1)], sampling_rate=16000, padding="longest", return_tensors="pt"
    )
    label = VOCABULARY.encode("ab")

    def batch(weights):
        return Batch(
            input_values=features["input_values"],
            attention_mask=features.get("attention_mask"),
            sample_lengths=torch.tensor([16000, 16000]),
            targets=torch.tensor(label + label),
            target_lengths=torch.tensor([len(label), len(label)]),
            weights=weights,
        )

    with torch.no_grad():
        both = ctc_loss(network, batch(None), VOCABULARY.pad_id)
        first_only = ctc_loss(network, batch(torch.tensor([1.0, 0.0])), VOCABULARY.pad_id)
        first = ctc_loss(
            network,
            Batch(
                features["input_values"][:1],
                None if features.get("attention_mask") is None else features["attention_mask"][:1],
                torch.tensor([16000]),
                torch.tensor(label),
                torch.tensor([len(label)]),
            ),
            VOCABULARY.pad_id,
        )
    assert first_only == pytest.approx(first.item() / 2, rel=1e-5)
    assert both != pytest.approx(first_only.item())


def test_noisy_rows_get_spans_of_frames_masked_within_their_length():
    torch.manual_seed(0)
    rows = torch.tensor([True, False, True])
    lengths = torch.tensor([1000, 1000, 400])
    mask = _span_mask(rows, lengths, 1000, 0.2)[:, :, 0]  # (B, T)
    assert not mask[1].any()
    assert not mask[2, 404:].any()  # a span may start at the last frames, never past them
    assert 0.1 < mask[0].float().mean() < 0.3
    assert math.isclose(_span_mask(rows, lengths, 1000, 0.0).float().sum().item(), 0)


def test_pseudo_labels_can_be_the_greedy_drafts_instead_of_the_lm_decoded_ones(
    tmp_path, monkeypatch
):
    import asr.round

    promoted = tmp_path / "promoted"
    save_ctc_model(model_that_always_writes("a"), promoted)
    pool = [PoolDraft(noise(1.0, 30), "b", 1.0, greedy_text="a")]
    trained_on = []
    real_finetune = asr.round.finetune

    def recording_finetune(*args, pseudo=(), **options):
        trained_on.append([text for _, text in pseudo])
        return real_finetune(*args, pseudo=pseudo, **options)

    monkeypatch.setattr(asr.round, "finetune", recording_finetune)
    config = RoundConfig(
        max_steps=1, batch_size=2, warmup_steps=0, lm_order=0, recovery_attempts=0,
        self_train=True, pseudo_max_ratio=1.0,
    )  # fmt: skip
    data = RoundData(train=CLIPS[:2], dev=CLIPS[2:], test=CLIPS[2:], pool=pool)
    for directory, greedy in (("shown", False), ("greedy", True)):
        run_round(
            data,
            replace(config, pseudo_from_greedy=greedy),
            tmp_path / directory,
            ModelSource("builtin:tiny", VOCABULARY),
            promoted_dir=promoted,
        )
    assert trained_on == [["b"], ["a"]]


def tiny_whisper():
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperEncoder,
        WhisperEncoderConfig,
        whisper_ctc_model,
    )

    encoder = WhisperEncoder(WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64))
    head = WhisperCtcHeadConfig(encoder_layers=(1, 2), width=32, layers=1, heads=2)
    return whisper_ctc_model(VOCABULARY, head, encoder.requires_grad_(False))


def test_the_encoders_top_layers_train_on_a_copy_at_a_lower_rate_with_the_rest_cached(tmp_path):
    from asr.round import _unfrozen
    from asr.whisper import cache_encoder_outputs

    model = tiny_whisper()
    shared = model.network.encoder
    cache = {}
    cache_encoder_outputs(model.network, cache)
    config = RoundConfig(unfreeze_top_layers=1, encoder_learning_rate_factor=0.1)
    lines = []

    model = _unfrozen(model, config, lines.append)
    network = model.network
    assert lines == ["the encoder's top 1 layers train too, at 0.1 of the learning rate"]
    assert [layer.attention_norm.weight.requires_grad for layer in network.encoder.layers] == [
        False,
        True,
    ]
    assert network.head_config.unfreeze_top_layers == 1  # saved with the model
    assert not any(p.requires_grad for p in shared.parameters())  # other models' encoder

    # the loop itself runs anywhere: the encoder's group learns at a tenth of the rate
    before = network.encoder.layers[1].ffn_out.weight.detach().clone()
    finetune(
        model,
        CLIPS[:2],
        [],
        tmp_path,
        FinetuneConfig(
            max_steps=2, batch_size=2, learning_rate=1e-2, warmup_steps=0, eval_every=1,
            encoder_learning_rate_factor=0.1,
        ),
    )  # fmt: skip
    assert not torch.equal(before, network.encoder.layers[1].ffn_out.weight)
    # the cache kept layer 1's outputs, which do not change: the layer that trains ran again
    assert cache and all(hidden.shape[1:] == (1, 32) for hidden in cache.values())
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [group["lr_factor"] for group in groups] == [1.0, 0.1]
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"])


def test_a_run_that_patience_ends_before_the_check_step_is_still_caught_stuck(tmp_path):
    config = FinetuneConfig(
        max_steps=50, batch_size=2, learning_rate=1e-12, warmup_steps=0, eval_every=1,
        patience=1, collapse_dev_cer=0.9, collapse_check_step=40,
    )  # fmt: skip
    result = finetune(model_that_always_writes("[PAD]"), CLIPS[:2], CLIPS[2:], tmp_path, config)
    assert result.steps == 1  # patience: no better dev CER after one evaluation
    assert result.collapsed.startswith("stuck: best dev CER 1.00 at step 1")


def test_pseudo_labeled_clips_are_masked_whatever_their_weight():
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperEncoder,
        WhisperEncoderConfig,
        whisper_ctc_model,
    )

    encoder = WhisperEncoder(WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64))
    head = WhisperCtcHeadConfig(encoder_layers=(1, 2), width=32, layers=1, heads=2, dropout=0.0)
    model = whisper_ctc_model(VOCABULARY, head, encoder.requires_grad_(False))
    network = model.network.train()
    features = model.feature_extractor(
        [noise(1.0, 0), noise(1.0, 1)], sampling_rate=16000, padding="longest", return_tensors="pt"
    )
    label = VOCABULARY.encode("ab")

    def loss(pseudo):
        torch.manual_seed(0)
        batch = Batch(
            features["input_values"],
            features["attention_mask"],
            torch.tensor([16000, 16000]),
            torch.tensor(label + label),
            torch.tensor([len(label), len(label)]),
            weights=torch.tensor([1.0, 1.0]),  # a pseudo weight of 1: still a pseudo-label
            pseudo=None if pseudo is None else torch.tensor(pseudo),
        )
        with torch.no_grad():
            return ctc_loss(network, batch, VOCABULARY.pad_id, mask_prob=0.5).item()

    assert loss(None) == loss([False, False])
    assert loss([True, True]) != loss(None)


def test_fine_tuned_encoder_layers_are_kept_when_a_later_round_freezes_them(tmp_path):
    from asr.round import _unfrozen
    from asr.whisper import load_whisper_ctc_model, save_whisper_ctc_model

    model = tiny_whisper()
    base = model.network.encoder
    model = _unfrozen(model, RoundConfig(unfreeze_top_layers=1), lambda line: None)
    with torch.no_grad():
        model.network.encoder.layers[1].ffn_out.bias.fill_(0.5)  # what training changed
    save_whisper_ctc_model(model, tmp_path / "unfrozen-round")

    # a later round with the encoder frozen continues from it: its changes stay
    again = load_whisper_ctc_model(tmp_path / "unfrozen-round", base)
    again = _unfrozen(again, RoundConfig(unfreeze_top_layers=0), lambda line: None)
    assert again.network.encoder_frozen
    save_whisper_ctc_model(again, tmp_path / "frozen-round")
    last = load_whisper_ctc_model(tmp_path / "frozen-round", base)
    assert torch.all(last.network.encoder.layers[1].ffn_out.bias == 0.5)
    assert not torch.all(base.layers[1].ffn_out.bias == 0.5)  # the base encoder is untouched
