import math
from pathlib import Path

import pytest
import torch

from asr.decode import ctc_greedy_decode
from asr.lm import (
    SENTENCE_END,
    UNKNOWN_WORD,
    BeamSettings,
    LexiconDecoder,
    load_language_model,
    remove_language_model,
    save_language_model,
    train_ngram,
)
from asr.text import TextRules, vocabulary_from_texts

SENTENCES = ["mama na baba", "mama na mtoto", "baba na mama", "mtoto na mama", "kesho"]


def test_every_conditional_distribution_sums_to_one():
    lm = train_ngram(SENTENCES, order=3)
    outcomes = ["mama", "na", "baba", "mtoto", "kesho", SENTENCE_END, UNKNOWN_WORD]

    for history in [("<s>",), ("mama",), ("<s>", "mama"), ("mama", "na"), ("kesho",), ("x", "y")]:
        total = sum(10 ** lm.log10_probability(history + (word,)) for word in outcomes)
        assert total == pytest.approx(1.0, abs=1e-6), history


def test_seen_continuations_are_likelier_than_unseen_ones():
    lm = train_ngram(SENTENCES, order=2)

    assert lm.log10_probability(["mama", "na"]) > lm.log10_probability(["mama", "kesho"])
    assert lm.log10_probability(["na", "mama"]) > lm.log10_probability(["na", "kesho"])


def test_kenlm_reads_the_arpa_file_with_the_same_scores(tmp_path: Path):
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    dictionary = pytest.importorskip("flashlight.lib.text.dictionary")
    lm = train_ngram(SENTENCES, order=3)
    lm.write_arpa(tmp_path / "lm.arpa")
    words = dictionary.create_word_dict(
        {w: [[w]] for w in ["mama", "na", "baba", "mtoto", "kesho", "<s>", "</s>", "<unk>"]}
    )

    model = kenlm.KenLM(str(tmp_path / "lm.arpa"), words)
    state = model.start(False)
    history = ["<s>"]
    for word in ["baba", "na", "mtoto", "</s>"]:
        state, score = model.score(state, words.get_index(word))
        history.append(word)
        assert score == pytest.approx(lm.log10_probability(history), abs=1e-4)


def test_no_sentences_is_a_clear_error():
    with pytest.raises(ValueError, match="no words"):
        train_ngram(["", "  "])


# --- the lexicon decoder ----------------------------------------------------------------------

RULES = TextRules()
VOCABULARY = vocabulary_from_texts(["kata kita tuta"], RULES)


def spelled(*frames: dict[str, float]) -> torch.Tensor:
    """Per frame, {token: probability}; what is left is spread over the other tokens -> (T, V)."""
    probs = torch.zeros(len(frames), len(VOCABULARY))
    for row, frame in enumerate(frames):
        rest = (1 - sum(frame.values())) / (len(VOCABULARY) - len(frame))
        probs[row] = rest
        for token, p in frame.items():
            probs[row, VOCABULARY.tokens.index(token)] = p
    return probs.log()


def word(letters: str, vowel_doubt: dict[str, float] | None = None) -> list[dict[str, float]]:
    frames = []
    for index, letter in enumerate(letters):
        frames.append(vowel_doubt if (vowel_doubt and index == 1) else {letter: 0.9})
        frames.append({"[PAD]": 0.9})
    return frames


@pytest.fixture
def arpa(tmp_path: Path) -> Path:
    pytest.importorskip("flashlight.lib.text.decoder")
    path = tmp_path / "lm.arpa"
    train_ngram(["kata tuta", "tuta kata", "kata"], order=2).write_arpa(path)
    return path


def test_a_doubtful_letter_resolves_to_the_lexicon_word(arpa: Path):
    # the second letter leans to "i" (0.5 against 0.4): greedy writes "kita", not a word
    log_probs = spelled(*word("kata", {"i": 0.5, "a": 0.4}), {"|": 0.9}, *word("tuta"))
    decoder = LexiconDecoder(VOCABULARY, ["kata", "tuta"], arpa, BeamSettings(lm_weight=1.0))

    greedy = VOCABULARY.decode(ctc_greedy_decode(log_probs).token_ids)
    assert greedy == "kita tuta"
    assert decoder.decode(log_probs) == "kata tuta"


def test_only_lexicon_words_come_out_when_leaving_it_costs_everything(arpa: Path):
    log_probs = spelled(*word("kita"), {"|": 0.9}, *word("tuta"))  # a clear "kita"
    closed = BeamSettings(unknown_score=-math.inf)
    decoder = LexiconDecoder(VOCABULARY, ["kata", "tuta"], arpa, closed)

    assert decoder.decode(log_probs) == "kata tuta"  # the lexicon's nearest word
    assert decoder.decode(torch.zeros(0, len(VOCABULARY))) == ""


def test_words_the_vocabulary_cannot_spell_are_left_out_of_the_lexicon(arpa: Path):
    decoder = LexiconDecoder(VOCABULARY, ["kata", "tuta", "kesho", ""], arpa)

    assert decoder.lexicon_size == 2


def test_a_model_directory_keeps_its_language_model(tmp_path: Path):
    pytest.importorskip("flashlight.lib.text.decoder")
    log_probs = spelled(*word("kata", {"i": 0.5, "a": 0.4}), {"|": 0.9}, *word("tuta"))
    assert load_language_model(tmp_path, VOCABULARY) is None  # none saved: greedy decoding
    assert save_language_model(tmp_path, ["", " "]) == 0
    assert not (tmp_path / "lm.arpa").exists()

    assert save_language_model(tmp_path, ["kata tuta", "tuta kata kata"], order=2) == 2

    decoder = load_language_model(tmp_path, VOCABULARY)
    assert (tmp_path / "lexicon.txt").read_text() == "kata\ntuta\n"
    assert decoder.decode(log_probs) == "kata tuta"
    remove_language_model(tmp_path)
    assert load_language_model(tmp_path, VOCABULARY) is None
