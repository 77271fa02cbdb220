import pytest

from asr.metrics import clip_errors, error_rates
from asr.text import TextRules

RULES = TextRules(lowercase=True, strip_characters=",.?!")


def test_case_and_stripped_punctuation_are_not_errors():
    rates = error_rates(["Habari, yako?"], ["habari yako"], RULES)
    assert rates.wer == 0.0 and rates.cer == 0.0


def test_one_substitution_in_four_words():
    errors = clip_errors("the cat sat down", "the hat sat down", RULES)
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 0)
    assert errors.wer == 0.25
    assert errors.character_edits == 1
    assert errors.cer == pytest.approx(1 / len("the cat sat down"))


def test_corpus_rates_pool_edits_rather_than_average_clip_rates():
    # clip 1: 1 error in 1 word (WER 1.0); clip 2: 0 errors in 9 words. Pooled: 1/10, not 0.5
    rates = error_rates(
        ["yes", "one two three four five six seven eight nine"],
        ["no", "one two three four five six seven eight nine"],
        RULES,
    )
    assert rates.wer == pytest.approx(0.1)
    assert [clip.wer for clip in rates.clips] == [1.0, 0.0]


def test_deletions_and_insertions_are_counted_per_clip():
    rates = error_rates(["a b c", "a b"], ["a c", "a b b d"], RULES)
    first, second = rates.clips
    assert (first.deletions, first.insertions) == (1, 0)
    assert (second.deletions, second.insertions) == (0, 2)
    assert rates.wer == pytest.approx(3 / 5)


def test_an_empty_reference_charges_each_inserted_word():
    errors = clip_errors("", "uh um", RULES)
    assert errors.insertions == 2 and errors.wer == 2.0
    assert clip_errors("", "", RULES).wer == 0.0


def test_texts_compared_are_the_normalized_ones():
    errors = clip_errors("  Ñandú,  KWELI ", "ñandú kweli", RULES)
    assert errors.reference == "ñandú kweli" == errors.hypothesis


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        error_rates(["a"], [], RULES)
