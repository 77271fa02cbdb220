"""Transcript text: per-project normalization, validation, and the CTC character vocabulary.

The vocabulary file is the `vocab.json` ({token: id}) that transformers' Wav2Vec2CTCTokenizer
reads, with `[PAD]` (id 0, also the CTC blank), `[UNK]` and `|` between words, as in the
transformers CTC fine-tuning recipe. So a saved model works with `from_pretrained` outside
Vernacular.
"""

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAD = "[PAD]"  # also the CTC blank
UNK = "[UNK]"
WORD_DELIMITER = "|"
SPECIAL_TOKENS = (PAD, UNK, WORD_DELIMITER)

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextRules:
    """A project's normalization. Characters are compared after Unicode NFC."""

    lowercase: bool = True
    strip_characters: str = ""  # removed everywhere, e.g. punctuation: ",.?!;:\"'"
    alphabet: str = ""  # the characters a transcript may use besides spaces; "" = any


def normalize_text(text: str, rules: TextRules) -> str:
    """NFC, optional lowercase, drop the strip characters, collapse whitespace to one space.

    Lowercasing happens between two NFC passes because it can decompose a character.
    """
    text = unicodedata.normalize("NFC", text)
    if rules.lowercase:
        text = unicodedata.normalize("NFC", text.lower())
    strip = set(unicodedata.normalize("NFC", rules.strip_characters))
    if strip:
        text = "".join(character for character in text if character not in strip)
    return _WHITESPACE.sub(" ", text).strip()


def validate_text(text: str, rules: TextRules) -> list[str]:
    """Characters of the normalized text outside the project's alphabet, in order of appearance.

    Empty list = the transcript is fine. With no alphabet set, only the word delimiter `|` is
    refused, because the vocabulary reserves it.
    """
    allowed = set(unicodedata.normalize("NFC", rules.alphabet)) | {" "}
    offending: dict[str, None] = {}  # an ordered set
    for character in normalize_text(text, rules):
        if character == WORD_DELIMITER or (rules.alphabet and character not in allowed):
            offending[character] = None
    return list(offending)


def text_problem(text: str, rules: TextRules) -> str | None:
    """Why a transcript cannot be stored as written, in a few words; None if it can. The one
    check behind the transcription page, review and import."""
    offending = validate_text(text, rules)
    if offending:
        return "not in the alphabet: " + " ".join(offending)
    if not normalize_text(text, rules).strip():  # "..." is no transcript either
        return "empty text"
    return None


@dataclass(frozen=True)
class Vocabulary:
    """CTC output tokens; a token's id is its index. tokens[0] is [PAD], the blank."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary starts with {SPECIAL_TOKENS}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("a vocabulary has each token once")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def word_delimiter_id(self) -> int:
        return 2

    def encode(self, normalized_text: str) -> list[int]:
        """Normalized text -> token ids; spaces become `|`, unknown characters [UNK]."""
        ids = {token: index for index, token in enumerate(self.tokens)}
        return [
            ids.get(WORD_DELIMITER if character == " " else character, self.unk_id)
            for character in normalized_text
        ]

    def unknown_letters(self, normalized_text: str) -> list[str]:
        """The characters of a text (spaces aside) that no token writes, sorted."""
        return sorted(set(normalized_text.replace(" ", "")) - set(self.tokens[3:]))

    def decode(self, token_ids: Iterable[int]) -> str:
        """Token ids (already CTC-collapsed) -> text; [PAD] dropped, `|` read as a space."""
        pieces = []
        for token_id in token_ids:
            if token_id == self.pad_id:
                continue
            token = self.tokens[token_id]
            pieces.append(" " if token == WORD_DELIMITER else token)
        return _WHITESPACE.sub(" ", "".join(pieces)).strip()

    def save(self, path: str | Path) -> None:
        """Write vocab.json ({token: id}), as Wav2Vec2CTCTokenizer reads it."""
        mapping = {token: index for index, token in enumerate(self.tokens)}
        Path(path).write_text(json.dumps(mapping, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        mapping: dict[str, int] = json.loads(Path(path).read_text())
        if sorted(mapping.values()) != list(range(len(mapping))):
            raise ValueError(f"{path}: ids are not 0..{len(mapping) - 1}")
        return cls(tuple(sorted(mapping, key=mapping.__getitem__)))


def vocabulary_from_texts(texts: Iterable[str], rules: TextRules) -> Vocabulary:
    """Special tokens, then every character of the alphabet and of the normalized texts, sorted.

    Building from the alphabet as well means the vocabulary (and the model's output layer)
    does not change size when a later transcript uses a letter for the first time.
    """
    characters = set(unicodedata.normalize("NFC", rules.alphabet))
    for text in texts:
        characters |= set(normalize_text(text, rules))
    characters.discard(" ")
    if WORD_DELIMITER in characters:
        raise ValueError(f"{WORD_DELIMITER!r} is the word delimiter; it cannot be a character")
    return Vocabulary(SPECIAL_TOKENS + tuple(sorted(characters)))
