import numpy as np
import pytest
import torch

from asr.audio import SAMPLE_RATE
from asr.evaluate import evaluate_model
from asr.model import build_tiny_ctc_model
from asr.text import TextRules, vocabulary_from_texts


def model_that_always_says(letter: str, vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    with torch.no_grad():
        model.network.lm_head.weight.zero_()
        model.network.lm_head.bias.fill_(-30.0)
        model.network.lm_head.bias[vocabulary.tokens.index(letter)] = 30.0
    return model


def test_rates_and_per_clip_errors_come_back_in_input_order():
    vocabulary = vocabulary_from_texts(["a b"], TextRules())
    model = model_that_always_says("a", vocabulary)
    clips = [np.zeros(SAMPLE_RATE, np.float32), np.zeros(2 * SAMPLE_RATE, np.float32)]

    evaluation = evaluate_model(model, clips, ["a", "b a"])

    assert [t.text for t in evaluation.transcripts] == ["a", "a"]
    assert [clip.cer for clip in evaluation.clips] == [0.0, pytest.approx(2 / 3)]
    assert evaluation.cer == pytest.approx(2 / 4)  # pooled: 2 edits over 1 + 3 characters
    assert evaluation.wer == pytest.approx(1 / 3)


def test_case_counts_as_an_error_because_references_arrive_normalized():
    vocabulary = vocabulary_from_texts(["a A"], TextRules(lowercase=False))
    model = model_that_always_says("a", vocabulary)
    evaluation = evaluate_model(model, [np.zeros(SAMPLE_RATE, np.float32)], ["A"])
    assert evaluation.cer == 1.0


def test_clips_and_references_must_pair_up():
    vocabulary = vocabulary_from_texts(["a"], TextRules())
    with pytest.raises(ValueError, match="1 clips but 2 references"):
        evaluate_model(build_tiny_ctc_model(vocabulary), [np.zeros(1600)], ["a", "a"])
