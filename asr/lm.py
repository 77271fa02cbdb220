"""Word n-gram language models and lexicon-constrained CTC beam search.

Greedy CTC decoding spells every word letter by letter, so one wrong letter in a long word is a
wrong word: on the demo language, character error rates of 10-20% give word error rates of
60-80%. A lexicon (the words the labeled transcripts contain) and a word n-gram model trained
on those transcripts let a beam search prefer spellings that are words, and word sequences that
occur. This module builds both from plain text and runs flashlight-text's lexicon decoder
(KenLM inside) on a model's log-probabilities.

The n-gram model is a backoff model with absolute discounting, written as an ARPA file (the
text format KenLM reads; a KenLM binary built elsewhere works too):

    p(w | h) = (c(h w) - D) / c(h)                      if h w was seen
             = bow(h) * p(w | h')                       otherwise, h' = h without its first word
    bow(h)   = (D * types(h) / c(h)) / (1 - sum over seen w of p(w | h'))

with D = n1 / (n1 + 2 n2) per order (n1, n2: how many n-grams occur once, twice). Unigrams keep
a share for <unk>, so words outside the lexicon cost but are not impossible for the LM.
"""

import contextlib
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.text import WORD_DELIMITER, Vocabulary

SENTENCE_START, SENTENCE_END, UNKNOWN_WORD = "<s>", "</s>", "<unk>"


class LanguageModelUnavailable(Exception):
    """flashlight-text is not installed (pip install flashlight-text)."""


@dataclass(frozen=True)
class NgramModel:
    """log10 probabilities and backoff weights of every n-gram, as an ARPA file lists them."""

    order: int
    log10_probabilities: dict[tuple[str, ...], float]
    log10_backoffs: dict[tuple[str, ...], float]

    def log10_probability(self, words: Sequence[str]) -> float:
        """log10 p(last word | the words before it), backing off as the ARPA semantics say."""
        words = tuple(words)[-self.order :]
        backoff = 0.0
        while words:
            if words in self.log10_probabilities:
                return backoff + self.log10_probabilities[words]
            backoff += self.log10_backoffs.get(words[:-1], 0.0)
            words = words[1:]
        return backoff + self.log10_probabilities[(UNKNOWN_WORD,)]

    def write_arpa(self, path: str | Path) -> None:
        by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        for ngram in self.log10_probabilities:
            by_order[len(ngram)].append(ngram)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in range(1, self.order + 1)]
        for n in range(1, self.order + 1):
            lines += ["", f"\\{n}-grams:"]
            for ngram in sorted(by_order[n]):
                line = f"{self.log10_probabilities[ngram]:.6f}\t{' '.join(ngram)}"
                if n < self.order and ngram in self.log10_backoffs:
                    line += f"\t{self.log10_backoffs[ngram]:.6f}"
                lines.append(line)
        lines += ["", "\\end\\", ""]
        Path(path).write_text("\n".join(lines), encoding="utf-8")


def train_ngram(
    sentences: Iterable[str], order: int = 3, unknown_share: float = 0.01
) -> NgramModel:
    """A backoff n-gram model of whitespace-separated words (see the module docstring). Order 2
    at least: KenLM reads no unigram-only model. Words spelled like <s>, </s> or <unk> are
    left out: they would collide with the ARPA file's own."""
    if order < 2:
        raise ValueError("an n-gram model has order >= 2 (KenLM reads no unigram model)")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]  # counts[n][ngram]
    for sentence in sentences:
        reserved = (SENTENCE_START, SENTENCE_END, UNKNOWN_WORD)
        words = [SENTENCE_START, *(w for w in sentence.split() if w not in reserved), SENTENCE_END]
        if len(words) == 2:
            continue
        for n in range(1, order + 1):
            for start in range(len(words) - n + 1):
                ngram = tuple(words[start : start + n])
                if ngram != (SENTENCE_START,):  # <s> is context only, never predicted
                    counts[n][ngram] += 1
    if not counts[1]:
        raise ValueError("no words to train a language model on")

    probabilities: dict[tuple[str, ...], float] = {}
    total = sum(counts[1].values())
    for (word,), count in counts[1].items():
        probabilities[(word,)] = (1 - unknown_share) * count / total
    probabilities[(UNKNOWN_WORD,)] = unknown_share
    backoffs: dict[tuple[str, ...], float] = {}
    for n in range(2, order + 1):
        discount = _discount(counts[n])
        history_counts: Counter = Counter()
        followers: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for ngram, count in counts[n].items():
            history_counts[ngram[:-1]] += count
            followers[ngram[:-1]].append(ngram[-1])
        for history, words in followers.items():
            history_count = history_counts[history]
            seen_lower = 0.0
            for word in words:
                probabilities[history + (word,)] = (
                    counts[n][history + (word,)] - discount
                ) / history_count
                seen_lower += _probability(probabilities, backoffs, history[1:] + (word,))
            left = discount * len(words) / history_count
            backoffs[history] = left / max(1.0 - seen_lower, 1e-9)
    return NgramModel(
        order=order,
        log10_probabilities={ngram: math.log10(p) for ngram, p in probabilities.items()}
        | {(SENTENCE_START,): -99.0},
        log10_backoffs={history: math.log10(b) for history, b in backoffs.items() if b > 0},
    )


def _discount(counts: Counter) -> float:
    once = sum(1 for count in counts.values() if count == 1)
    twice = sum(1 for count in counts.values() if count == 2)
    if once == 0:
        return 0.5
    return min(max(once / (once + 2 * twice), 0.1), 0.9)


def _probability(probabilities: dict, backoffs: dict, ngram: tuple[str, ...]) -> float:
    """p(last word | rest) from the (lower-order) tables built so far, plain probabilities."""
    factor = 1.0
    while ngram:
        if ngram in probabilities:
            return factor * probabilities[ngram]
        factor *= backoffs.get(ngram[:-1], 1.0)
        ngram = ngram[1:]
    return factor * probabilities[(UNKNOWN_WORD,)]


# --- decoding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeamSettings:
    """Beam search weights, added to the acoustic log-probabilities: lm_weight times the LM's
    log10 score, word_score per word (positive favors more words), and unknown_score, what
    flashlight's decoder pays to leave the lexicon (-inf: only lexicon words come out; a finite
    score lets it keep letters it cannot fit into a word). Defaults were picked on a dev set of
    the demo corpus, where -5 beat -inf on CER and WER (docs/benchmarks.md)."""

    lm_weight: float = 2.0
    word_score: float = 1.0
    unknown_score: float = -5.0
    beam_size: int = 50
    beam_size_token: int = 20
    beam_threshold: float = 25.0


class LexiconDecoder:
    """CTC beam search whose words come from a lexicon, scored by a word n-gram model.

    decoder = LexiconDecoder(vocabulary, lexicon_words, "lm.arpa", BeamSettings())
    text = decoder.decode(log_probs)  # (T, V) log-softmax of one clip, frames past its end cut
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        words: Iterable[str],
        arpa_path: str | Path,
        settings: BeamSettings = BeamSettings(),
    ) -> None:
        try:
            from flashlight.lib.text.decoder import (
                CriterionType,
                LexiconDecoderOptions,
                SmearingMode,
                Trie,
            )
            from flashlight.lib.text.decoder import LexiconDecoder as FlashlightDecoder
            from flashlight.lib.text.decoder.kenlm import KenLM
            from flashlight.lib.text.dictionary import Dictionary, create_word_dict
        except ImportError as error:
            raise LanguageModelUnavailable("pip install flashlight-text") from error
        self.vocabulary = vocabulary
        spellable = set(vocabulary.tokens[3:])
        lexicon = {
            word: [[*word, WORD_DELIMITER]]
            for word in sorted(set(words))
            if word and set(word) <= spellable and word not in (SENTENCE_START, SENTENCE_END)
        }
        lexicon[UNKNOWN_WORD] = [[UNKNOWN_WORD]]
        self.word_dictionary = create_word_dict(lexicon)
        token_dictionary = Dictionary(list(vocabulary.tokens))
        with _stderr_silenced():  # KenLM draws a loading bar on stderr
            self.lm = KenLM(str(arpa_path), self.word_dictionary)
        silence = vocabulary.word_delimiter_id
        trie = Trie(len(vocabulary), silence)
        start = self.lm.start(False)
        for word, spellings in lexicon.items():
            if word == UNKNOWN_WORD:
                continue
            word_id = self.word_dictionary.get_index(word)
            _, score = self.lm.score(start, word_id)
            for spelling in spellings:
                trie.insert([token_dictionary.get_index(t) for t in spelling], word_id, score)
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(
            beam_size=settings.beam_size,
            beam_size_token=settings.beam_size_token,
            beam_threshold=settings.beam_threshold,
            lm_weight=settings.lm_weight,
            word_score=settings.word_score,
            unk_score=settings.unknown_score,
            sil_score=0.0,
            log_add=False,
            criterion_type=CriterionType.CTC,
        )
        self._decoder = FlashlightDecoder(
            options,
            trie,
            self.lm,
            silence,
            vocabulary.pad_id,
            self.word_dictionary.get_index(UNKNOWN_WORD),
            [],
            False,
        )
        self.lexicon_size = len(lexicon) - 1

    def decode(self, log_probs: torch.Tensor | np.ndarray) -> str:
        """(T, V) log-probabilities of one clip -> its best word sequence."""
        emissions = torch.as_tensor(log_probs, dtype=torch.float32).cpu()
        if emissions.shape[0] == 0:
            return ""
        # Lexicon spellings end in the word delimiter, which a CTC model never writes after a
        # clip's last word; one extra frame that is surely a delimiter lets the last word end
        # as a lexicon word (without it, it could only leave through <unk>).
        closing = torch.full((1, emissions.shape[1]), -1e4)
        closing[0, self.vocabulary.word_delimiter_id] = 0.0
        emissions = torch.cat([emissions, closing]).contiguous()
        frames, tokens = emissions.shape
        best = self._decoder.decode(emissions.data_ptr(), frames, tokens)[0]
        # Spelled from the token path rather than the word ids: where the decoder left the
        # lexicon (unknown_score > -inf) the letters it took come out, not "<unk>".
        path = [token for token in best.tokens if token >= 0]
        collapsed = [token for i, token in enumerate(path) if i == 0 or token != path[i - 1]]
        return self.vocabulary.decode(collapsed)


# --- a model directory's language model ------------------------------------------------------

LM_FILE, LEXICON_FILE = "lm.arpa", "lexicon.txt"


def save_language_model(directory: str | Path, texts: Sequence[str], order: int = 3) -> int:
    """Write lm.arpa (word n-grams of `texts`) and lexicon.txt (their words, one per line) next
    to a saved model. Returns the lexicon's size; nothing is written when texts have no words."""
    reserved = (SENTENCE_START, SENTENCE_END, UNKNOWN_WORD)
    words = sorted({word for text in texts for word in text.split() if word not in reserved})
    if not words:
        return 0
    directory = Path(directory)
    train_ngram(texts, order).write_arpa(directory / LM_FILE)
    (directory / LEXICON_FILE).write_text("".join(f"{word}\n" for word in words), "utf-8")
    return len(words)


def remove_language_model(directory: str | Path) -> None:
    for name in (LM_FILE, LEXICON_FILE):
        (Path(directory) / name).unlink(missing_ok=True)


def load_language_model(
    directory: str | Path, vocabulary: Vocabulary, settings: BeamSettings = BeamSettings()
) -> LexiconDecoder | None:
    """The decoder for a model directory that has lm.arpa and lexicon.txt; None when it has
    not, or when flashlight-text is not installed (greedy decoding then)."""
    directory = Path(directory)
    if not (directory / LM_FILE).is_file() or not (directory / LEXICON_FILE).is_file():
        return None
    words = (directory / LEXICON_FILE).read_text("utf-8").split()
    try:
        return LexiconDecoder(vocabulary, words, directory / LM_FILE, settings)
    except LanguageModelUnavailable:
        return None


def language_model_decode(
    directory: str | Path, vocabulary: Vocabulary
) -> Callable[[torch.Tensor], str] | None:
    """The beam search of a model directory's LM as a log-probs -> text function (what
    transcribe_clips and evaluate_model take); None: greedy decoding."""
    decoder = load_language_model(directory, vocabulary)
    return decoder.decode if decoder else None


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for a while (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
