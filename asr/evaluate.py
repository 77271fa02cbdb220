"""Score a CTC model on clips with known transcripts: corpus WER/CER and each clip's errors."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.metrics import ClipErrors, error_rates
from asr.model import ClipTranscript, CtcModel, InferenceConfig, transcribe_clips
from asr.text import TextRules

# References arrive normalized by the project's rules; the model writes only vocabulary
# characters. So compare as given: NFC and whitespace only, no second lowercasing that would
# hide case errors in a project that keeps case.
AS_GIVEN = TextRules(lowercase=False)


@dataclass(frozen=True)
class Evaluation:
    wer: float
    cer: float
    clips: list[ClipErrors]  # per clip, in input order
    transcripts: list[ClipTranscript]  # per clip, in input order


def evaluate_model(
    model: CtcModel,
    clips: Sequence[np.ndarray],
    references: Sequence[str],
    *,
    rules: TextRules = AS_GIVEN,
    inference_config: InferenceConfig | None = None,
    decode: Callable[[torch.Tensor], str] | None = None,
) -> Evaluation:
    """Transcribe clips (each (n_i,) at 16 kHz) and compare with their references.

    `decode`: log-probs -> text instead of greedy decoding (see asr.model.transcribe_clips)."""
    if len(clips) != len(references):
        raise ValueError(f"{len(clips)} clips but {len(references)} references")
    transcripts = transcribe_clips(model, clips, inference_config or InferenceConfig(), decode)
    rates = error_rates(references, [t.text for t in transcripts], rules)
    return Evaluation(rates.wer, rates.cer, rates.clips, transcripts)
