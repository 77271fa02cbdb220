"""A saved CTC model directory, whichever kind: a transformers model (asr.model) or a Whisper
encoder with a CTC head (asr.whisper), told apart by its files. The one module that knows
both formats, so that neither of those imports the other."""

from pathlib import Path

from asr.model import (
    CtcModel,
    ModelNotAvailable,
    load_pretrained_ctc_model,
    save_pretrained_ctc_model,
)
from asr.whisper import WhisperCtcNetwork, load_whisper_ctc_model, save_whisper_ctc_model


def save_ctc_model(model: CtcModel, directory: str | Path) -> None:
    """A Whisper-encoder model in its own small format (its head and trained layers only, the
    frozen encoder coming from the weight packages); any other as a transformers directory."""
    if isinstance(model.network, WhisperCtcNetwork):
        save_whisper_ctc_model(model, directory)
    else:
        save_pretrained_ctc_model(model, directory)


def load_ctc_model(directory: str | Path) -> CtcModel:
    """Load what save_ctc_model wrote."""
    directory = Path(directory)
    if not (directory / "vocab.json").is_file():
        raise ModelNotAvailable(f"{directory}: no vocab.json; not a saved CTC model")
    if (directory / "whisper_ctc.json").is_file():
        return load_whisper_ctc_model(directory)
    return load_pretrained_ctc_model(directory)
