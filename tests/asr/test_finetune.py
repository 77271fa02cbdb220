import math

import numpy as np
import pytest
import torch

from asr.audio import SAMPLE_RATE, decode_audio
from asr.checkpoint import load_ctc_model
from asr.evaluate import evaluate_model
from asr.finetune import FinetuneConfig, Progress, TrainingCancelled, finetune, get_lr
from asr.model import TinyModelConfig, build_tiny_ctc_model
from asr.text import TextRules, vocabulary_from_texts

TEXTS = ["habari yako", "ndiyo", "asante sana", "karibu", "hapana", "sawa sawa"]
VOCABULARY = vocabulary_from_texts(TEXTS, TextRules())


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise_clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


# five training clips, batches of two with two micro-batches per step: epochs wrap mid-step
NOISE_TRAIN = [(noise_clip(1.0 + 0.2 * i, i), text) for i, text in enumerate(TEXTS[:5])]
NOISE_DEV = [(noise_clip(1.2, 10), TEXTS[5])]
RESUMABLE = FinetuneConfig(
    max_steps=8,
    batch_size=2,
    gradient_accumulation_steps=2,
    learning_rate=1e-3,
    warmup_steps=2,
    eval_every=3,
    patience=0,
    mask_time_prob=0.3,  # SpecAugment and dropout on: their RNG must survive the restart
    mask_time_length=5,
    mask_feature_prob=0.2,
    mask_feature_length=4,
    freeze_feature_encoder=False,
)


def tiny_model():
    return build_tiny_ctc_model(VOCABULARY, TinyModelConfig(seed=0))


def weights(model) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.network.state_dict().items()}


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.allclose(first[name], second[name], atol=1e-6), name


def cancel_at(step_to_stop: int, seen: list[int]):
    def should_cancel() -> bool:
        return len(seen) >= step_to_stop

    return should_cancel


def counting_progress(seen: list[int]):
    def progress(report: Progress) -> None:
        if report.phase == "train":
            seen.append(report.step)

    return progress


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model = tiny_model()
    result = finetune(model, NOISE_TRAIN, NOISE_DEV, tmp_path_factory.mktemp("whole"), RESUMABLE)
    return result, weights(model)


def test_the_loop_learns_to_transcribe_a_few_real_clips(tmp_path, real_speech):
    clips = [
        (decode_audio(path), text) for path, text in real_speech if path.name.startswith("card")
    ][:3]
    vocabulary = vocabulary_from_texts([text for _, text in clips], TextRules())
    model = build_tiny_ctc_model(vocabulary)
    config = FinetuneConfig(
        max_steps=300,
        batch_size=3,
        learning_rate=3e-3,
        warmup_steps=30,
        eval_every=60,
        patience=0,
        mask_time_prob=0.0,
        freeze_feature_encoder=False,  # random conv stack: it has to learn too
    )

    result = finetune(model, clips, clips, tmp_path, config)

    assert result.best_dev_cer < 0.5 * result.initial_dev_cer
    assert result.best_dev_cer < 0.5  # most characters right, not just less noise
    assert np.mean(result.train_losses[-10:]) < 0.2 * np.mean(result.train_losses[:10])
    best = load_ctc_model(result.model_dir)  # the saved best model is the one that scored
    evaluation = evaluate_model(best, [s for s, _ in clips], [t for _, t in clips])
    assert evaluation.cer == pytest.approx(result.best_dev_cer)


def test_a_cancelled_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, uninterrupted):
    whole_result, whole_weights = uninterrupted
    seen: list[int] = []
    with pytest.raises(TrainingCancelled) as cancelled:
        finetune(
            tiny_model(),
            NOISE_TRAIN,
            NOISE_DEV,
            tmp_path,
            RESUMABLE,
            progress=counting_progress(seen),
            should_cancel=cancel_at(4, seen),
        )
    assert cancelled.value.step == 4  # between two evaluations

    resumed_model = tiny_model()
    resumed = finetune(resumed_model, NOISE_TRAIN, NOISE_DEV, tmp_path, RESUMABLE)

    assert resumed.steps == whole_result.steps == 8
    assert resumed.train_losses == pytest.approx(whole_result.train_losses, rel=1e-5)
    assert resumed.dev_history == whole_result.dev_history
    assert_same_weights(weights(resumed_model), whole_weights)


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path, uninterrupted):
    whole_result, whole_weights = uninterrupted
    seen: list[int] = []

    def die_at_step_5() -> bool:
        if len(seen) >= 5:
            raise KeyboardInterrupt  # no chance to save anything, like SIGKILL
        return False

    with pytest.raises(KeyboardInterrupt):
        finetune(
            tiny_model(),
            NOISE_TRAIN,
            NOISE_DEV,
            tmp_path,
            RESUMABLE,
            progress=counting_progress(seen),
            should_cancel=die_at_step_5,
        )
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3

    resumed_model = tiny_model()
    resumed = finetune(resumed_model, NOISE_TRAIN, NOISE_DEV, tmp_path, RESUMABLE)

    assert resumed.train_losses == pytest.approx(whole_result.train_losses, rel=1e-5)
    assert_same_weights(weights(resumed_model), whole_weights)


def test_the_same_seed_repeats_a_run_and_another_seed_does_not(tmp_path, uninterrupted):
    whole_result, whole_weights = uninterrupted
    again = tiny_model()
    finetune(again, NOISE_TRAIN, NOISE_DEV, tmp_path / "again", RESUMABLE)
    other = tiny_model()
    other_config = FinetuneConfig(**{**RESUMABLE.__dict__, "seed": 1})
    other_result = finetune(other, NOISE_TRAIN, NOISE_DEV, tmp_path / "other", other_config)

    assert_same_weights(weights(again), whole_weights)
    assert other_result.train_losses != pytest.approx(whole_result.train_losses, rel=1e-5)


def test_cancelling_leaves_a_checkpoint_and_the_best_model_so_far(tmp_path):
    seen: list[int] = []
    with pytest.raises(TrainingCancelled) as cancelled:
        finetune(
            tiny_model(),
            NOISE_TRAIN,
            NOISE_DEV,
            tmp_path,
            RESUMABLE,
            progress=counting_progress(seen),
            should_cancel=cancel_at(2, seen),
        )

    assert cancelled.value.step == 2
    assert cancelled.value.checkpoint_path == tmp_path / "checkpoint.pt"
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 2
    assert len(checkpoint["history"]["train_losses"]) == 2
    assert load_ctc_model(tmp_path / "model").vocabulary == VOCABULARY


def test_progress_reports_every_step_with_a_falling_eta(tmp_path):
    reports: list[Progress] = []
    finetune(tiny_model(), NOISE_TRAIN, NOISE_DEV, tmp_path, RESUMABLE, progress=reports.append)

    train = [report for report in reports if report.phase == "train"]
    evaluate = [report for report in reports if report.phase == "evaluate"]
    assert [report.step for report in train] == list(range(1, 9))
    assert [report.step for report in evaluate] == [0, 3, 6, 8]
    assert all(report.total == 8 for report in reports)
    assert all(math.isfinite(report.loss) and report.loss > 0 for report in train)
    assert all(report.eta_seconds >= 0 for report in train)
    assert train[-1].eta_seconds == 0
    assert train[1].eta_seconds > train[-2].eta_seconds


def test_training_stops_early_when_dev_cer_stops_improving(tmp_path):
    frozen = FinetuneConfig(**{**RESUMABLE.__dict__, "learning_rate": 0.0, "patience": 2})
    result = finetune(tiny_model(), NOISE_TRAIN, NOISE_DEV, tmp_path, frozen)

    assert result.stopped_early
    assert result.steps == 6  # evaluations at 3 and 6 did not beat step 0
    assert result.best_step == 0
    assert result.best_dev_cer == result.initial_dev_cer


def test_clips_too_long_or_with_more_letters_than_frames_are_skipped(tmp_path):
    train = NOISE_TRAIN + [
        (noise_clip(3.0, 20), "habari"),  # over max_clip_seconds
        (noise_clip(0.3, 21), "habari yako asante sana"),  # 14 frames for 23 letters
        (noise_clip(1.0, 22), ""),  # nothing to learn
    ]
    config = FinetuneConfig(**{**RESUMABLE.__dict__, "max_steps": 1, "max_clip_seconds": 2.5})
    result = finetune(tiny_model(), train, NOISE_DEV, tmp_path, config)
    assert result.skipped_clips == 3


def test_the_feature_encoder_stays_frozen_while_the_rest_learns(tmp_path):
    model = tiny_model()
    before = weights(model)
    config = FinetuneConfig(**{**RESUMABLE.__dict__, "freeze_feature_encoder": True})
    finetune(model, NOISE_TRAIN, NOISE_DEV, tmp_path, config)
    after = weights(model)

    conv = [name for name in before if ".feature_extractor." in name]
    assert conv and all(torch.equal(before[name], after[name]) for name in conv)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    seen: list[int] = []
    with pytest.raises(TrainingCancelled):
        finetune(
            tiny_model(),
            NOISE_TRAIN,
            NOISE_DEV,
            tmp_path,
            RESUMABLE,
            progress=counting_progress(seen),
            should_cancel=cancel_at(1, seen),
        )
    with pytest.raises(ValueError, match="other settings or data"):
        finetune(tiny_model(), NOISE_TRAIN[:4], NOISE_DEV, tmp_path, RESUMABLE)


def test_the_learning_rate_warms_up_then_decays_to_zero():
    config = FinetuneConfig(max_steps=100, warmup_steps=10, learning_rate=1e-3)
    rates = [get_lr(step, config) for step in range(100)]
    assert rates[0] < rates[5] < rates[9] <= 1e-3
    assert rates[10] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[99] == pytest.approx(1e-3 / 90)


def test_without_a_dev_set_the_last_model_is_kept(tmp_path):
    config = FinetuneConfig(**{**RESUMABLE.__dict__, "max_steps": 4})
    model = tiny_model()
    result = finetune(model, NOISE_TRAIN, [], tmp_path, config)

    assert result.best_step == 4 and math.isnan(result.best_dev_cer)
    saved = load_ctc_model(result.model_dir).network.state_dict()
    assert_same_weights(saved, weights(model))


def test_the_eta_follows_the_recent_pace_not_the_slow_first_steps():
    from asr.finetune import ETA_WINDOW, eta_seconds

    # Five slow steps while the encoder outputs are cached, then fast ones: an average since
    # the start would say (5 * 2 + 20 * 0.1) / 25 * 100 = 48 s for 100 more steps.
    steps = [2.0] * 5 + [0.1] * 20

    eta = eta_seconds(steps[-ETA_WINDOW:], 100, evaluation_seconds=1.0, remaining_evaluations=2)

    assert eta == pytest.approx(0.1 * 100 + 1.0 * 2)
    assert eta_seconds([0.1] * 19 + [30.0], 10, 0.0, 0) == pytest.approx(1.0)  # one stall
    assert eta_seconds([], 10, 0.0, 0) is None
