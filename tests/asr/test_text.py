import json

import pytest

from asr.text import (
    PAD,
    UNK,
    WORD_DELIMITER,
    TextRules,
    Vocabulary,
    normalize_text,
    validate_text,
    vocabulary_from_texts,
)

DECOMPOSED_E_ACUTE = "e\u0301"
COMPOSED_E_ACUTE = "\u00e9"


def test_normalization_composes_unicode():
    assert normalize_text(f"caf{DECOMPOSED_E_ACUTE}", TextRules()) == f"caf{COMPOSED_E_ACUTE}"


def test_normalization_lowercases_only_when_asked():
    assert normalize_text("Habari Yako", TextRules(lowercase=True)) == "habari yako"
    assert normalize_text("Habari Yako", TextRules(lowercase=False)) == "Habari Yako"


def test_normalization_strips_the_projects_characters_and_collapses_spaces():
    rules = TextRules(strip_characters=",.?!")
    assert normalize_text("  Ndiyo,  ni   kweli!\tSawa? \n", rules) == "ndiyo ni kweli sawa"


def test_strip_characters_given_decomposed_still_match_composed_text():
    rules = TextRules(strip_characters=DECOMPOSED_E_ACUTE)
    assert normalize_text(f"a{COMPOSED_E_ACUTE}b", rules) == "ab"


def test_validation_returns_each_offending_character_once_in_order():
    rules = TextRules(alphabet="abcdefghijklmnopqrstuvwxyz'")
    assert validate_text("Mama's 2 cats, 3 dogs", rules) == ["2", ",", "3"]


def test_validation_accepts_text_inside_the_alphabet_after_normalization():
    rules = TextRules(alphabet=f"abc{COMPOSED_E_ACUTE}", strip_characters=".")
    assert validate_text(f"AB {DECOMPOSED_E_ACUTE}c.", rules) == []


def test_validation_without_an_alphabet_refuses_only_the_word_delimiter():
    assert validate_text("anything 123 goes", TextRules()) == []
    assert validate_text("a|b", TextRules()) == [WORD_DELIMITER]


def test_vocabulary_has_special_tokens_first_then_sorted_characters():
    vocabulary = vocabulary_from_texts(["Ba ab", "c"], TextRules(alphabet="z"))
    assert vocabulary.tokens == (PAD, UNK, WORD_DELIMITER, "a", "b", "c", "z")
    assert (vocabulary.pad_id, vocabulary.unk_id, vocabulary.word_delimiter_id) == (0, 1, 2)


def test_vocabulary_refuses_the_delimiter_as_a_character():
    with pytest.raises(ValueError, match="delimiter"):
        vocabulary_from_texts(["a|b"], TextRules())


def test_encode_maps_spaces_to_the_delimiter_and_unknown_characters_to_unk():
    vocabulary = vocabulary_from_texts(["ab"], TextRules())
    a, b = vocabulary.tokens.index("a"), vocabulary.tokens.index("b")
    assert vocabulary.encode("ab xa") == [a, b, 2, 1, a]


def test_decode_skips_blanks_and_reads_delimiters_as_single_spaces():
    vocabulary = vocabulary_from_texts(["ab"], TextRules())
    a, b = vocabulary.tokens.index("a"), vocabulary.tokens.index("b")
    assert vocabulary.decode([2, a, 0, b, 2, 2, 0, a, 2]) == "ab a"


def test_vocab_json_round_trips_with_non_ascii_characters(tmp_path):
    vocabulary = vocabulary_from_texts(["ŋ ɛ ɔ ñ"], TextRules())
    vocabulary.save(tmp_path / "vocab.json")

    assert "ŋ" in (tmp_path / "vocab.json").read_text(encoding="utf-8")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocabulary


def test_a_vocab_json_with_gaps_in_its_ids_is_refused(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({PAD: 0, UNK: 1, WORD_DELIMITER: 2, "a": 4}))
    with pytest.raises(ValueError, match="ids"):
        Vocabulary.load(path)


def test_transformers_ctc_tokenizer_reads_our_vocab_the_same_way(tmp_path):
    from transformers import Wav2Vec2CTCTokenizer

    rules = TextRules(strip_characters=",")
    vocabulary = vocabulary_from_texts(["Ñandú, kweli ŋoma"], rules)
    vocabulary.save(tmp_path / "vocab.json")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(tmp_path / "vocab.json"),
        unk_token=UNK,
        pad_token=PAD,
        word_delimiter_token=WORD_DELIMITER,
        bos_token=None,
        eos_token=None,
    )
    text = normalize_text("Ñandú kweli ŋoma xyz", rules)
    ids = vocabulary.encode(text)

    assert len(tokenizer) == len(vocabulary)
    assert tokenizer.pad_token_id == vocabulary.pad_id
    assert tokenizer(text).input_ids == ids
    assert tokenizer.decode(ids, group_tokens=False) == vocabulary.decode(ids)


def test_decomposed_capitals_lowercase_to_the_composed_letter():
    assert normalize_text("E\u0301COLE", TextRules()) == f"{COMPOSED_E_ACUTE}cole"


def test_one_check_says_why_a_transcript_cannot_be_stored():
    from asr.text import TextRules, text_problem

    rules = TextRules(lowercase=False, strip_characters=".", alphabet="abc")
    assert text_problem("abc cab.", rules) is None
    assert text_problem("abQd", rules) == "not in the alphabet: Q d"
    assert text_problem("  ...  ", rules) == "empty text"
