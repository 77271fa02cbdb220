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
from training.selectors import project_base


def project_vocabulary(project: Project) -> Vocabulary:
    # From the alphabet alone: the output layer keeps its size from round to round.
    return vocabulary_from_texts([], project.text_rules())


def base_with_letters(project: Project, lines: list[str]) -> CtcModel | None:
    """The project's base where it is a saved CTC model with its own head and vocabulary (a
    wav2vec 2.0-family model fine-tuned elsewhere, another project's export) that knows every
    letter of `lines`: it can place a text before any round. None for the built-in bases,
    whose heads are new each round, and for a checkpoint without a CTC head."""
    directory = Path(project_base(project))
    if not (directory / "vocab.json").is_file():
        return None
    model = load_ctc_model(directory)
    if any(model.vocabulary.unknown_letters(line) for line in lines):
        return None
    return model


def load_version(directory: str | Path) -> CtcModel:
    return load_ctc_model(directory)


def version_decoder(model: CtcModel, directory: str | Path) -> Callable[[torch.Tensor], str] | None:
    """Lexicon + word n-gram beam search for a version saved with its language model (from its
    round's training transcripts, and the pool's drafts where dev preferred them); None:
    greedy decoding."""
    return language_model_decode(directory, model.vocabulary)
