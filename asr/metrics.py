"""Word and character error rates with jiwer, on text normalized by the project's rules.

Both sides go through the same `normalize_text`, so a model is not charged for case or
punctuation the project does not transcribe. Corpus rates pool the edits of all clips (the
usual definition), rather than averaging per-clip rates.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from asr.text import TextRules, normalize_text


@dataclass(frozen=True)
class ClipErrors:
    """Edit counts for one clip; texts as compared, after normalization."""

    reference: str
    hypothesis: str
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    character_edits: int
    reference_characters: int

    @property
    def word_edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Word edits per reference word; a clip with an empty reference counts edits per 1."""
        return self.word_edits / max(self.reference_words, 1)

    @property
    def cer(self) -> float:
        return self.character_edits / max(self.reference_characters, 1)


@dataclass(frozen=True)
class ErrorRates:
    wer: float
    cer: float
    clips: list[ClipErrors]


def clip_errors(reference: str, hypothesis: str, rules: TextRules) -> ClipErrors:
    reference = normalize_text(reference, rules)
    hypothesis = normalize_text(hypothesis, rules)
    words = jiwer.process_words(reference, hypothesis)
    characters = jiwer.process_characters(reference, hypothesis)
    return ClipErrors(
        reference=reference,
        hypothesis=hypothesis,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        reference_words=len(reference.split()),
        character_edits=characters.substitutions + characters.deletions + characters.insertions,
        reference_characters=len(reference),
    )


def error_rates(
    references: Sequence[str], hypotheses: Sequence[str], rules: TextRules
) -> ErrorRates:
    """Corpus WER and CER over paired texts, and the errors of each clip, in input order."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    clips = [clip_errors(ref, hyp, rules) for ref, hyp in zip(references, hypotheses, strict=True)]
    reference_words = sum(clip.reference_words for clip in clips)
    reference_characters = sum(clip.reference_characters for clip in clips)
    return ErrorRates(
        wer=sum(clip.word_edits for clip in clips) / max(reference_words, 1),
        cer=sum(clip.character_edits for clip in clips) / max(reference_characters, 1),
        clips=clips,
    )
