import pytest
import torch

from asr.decode import ctc_greedy_decode
from asr.text import TextRules, vocabulary_from_texts

BLANK, A, B = 0, 3, 4  # ids in a vocabulary of [PAD], [UNK], |, a, b
VOCAB_SIZE = 5


def emissions(*frames: tuple[int, float]) -> torch.Tensor:
    """(best token, its probability) per frame -> log-probs (T, V); the rest spread evenly."""
    probs = torch.zeros(len(frames), VOCAB_SIZE)
    for index, (token, prob) in enumerate(frames):
        probs[index] = (1 - prob) / (VOCAB_SIZE - 1)
        probs[index, token] = prob
    return probs.log()


def test_repeats_merge_blanks_separate_and_are_dropped():
    log_probs = emissions(
        (A, 0.9), (A, 0.9), (BLANK, 0.9), (A, 0.9), (B, 0.9), (B, 0.9), (BLANK, 0.9)
    )
    assert ctc_greedy_decode(log_probs).token_ids == [A, A, B]


def test_a_tokens_confidence_is_the_peak_of_its_run():
    log_probs = emissions((A, 0.5), (A, 0.8), (A, 0.6), (BLANK, 0.99), (B, 0.4))
    hypothesis = ctc_greedy_decode(log_probs)
    assert hypothesis.token_confidences == pytest.approx([0.8, 0.4])


def test_token_frames_are_where_each_run_starts():
    log_probs = emissions((BLANK, 0.9), (BLANK, 0.9), (A, 0.9), (A, 0.9), (BLANK, 0.9), (B, 0.9))
    assert ctc_greedy_decode(log_probs).token_frames == [2, 5]


def test_all_blank_and_zero_frames_give_empty_hypotheses():
    assert ctc_greedy_decode(emissions((BLANK, 0.9), (BLANK, 0.6))).token_ids == []
    assert ctc_greedy_decode(torch.zeros(0, VOCAB_SIZE)).token_ids == []


def test_the_blank_id_is_configurable():
    log_probs = emissions((A, 0.9), (BLANK, 0.9), (A, 0.9))
    assert ctc_greedy_decode(log_probs, blank_id=A).token_ids == [BLANK]


def test_decoded_ids_read_back_as_text_through_the_vocabulary():
    vocabulary = vocabulary_from_texts(["ab"], TextRules())
    delimiter = vocabulary.word_delimiter_id
    log_probs = emissions((A, 0.9), (BLANK, 0.9), (B, 0.9), (delimiter, 0.9), (A, 0.9), (A, 0.9))
    assert vocabulary.decode(ctc_greedy_decode(log_probs).token_ids) == "ab a"


def test_a_batch_shaped_input_to_the_single_decoder_is_refused():
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        ctc_greedy_decode(torch.zeros(1, 3, VOCAB_SIZE))
