"""A project's vocabulary and its saved versions, as scoring and transcription load them.

The models a round starts from are asr.round.ModelSource's (the built-in bases are named in
asr/recipe.py)."""

from collections.abc import Callable
from pathlib import Path

import torch

from asr.checkpoint import load_ctc_model
from asr.lm import language_model_decode
from asr.model import CtcModel
from asr.text import Vocabulary, vocabulary_from_texts
from labeling.models import Project


def project_vocabulary(project: Project) -> Vocabulary:
    # From the alphabet alone: the output layer keeps its size from round to round.
    return vocabulary_from_texts([], project.text_rules())


def load_version(directory: str | Path) -> CtcModel:
    return load_ctc_model(directory)


def version_decoder(model: CtcModel, directory: str | Path) -> Callable[[torch.Tensor], str] | None:
    """Lexicon + word n-gram beam search for a version saved with its language model (from its
    round's training transcripts, and the pool's drafts where dev preferred them); None:
    greedy decoding."""
    return language_model_decode(directory, model.vocabulary)
