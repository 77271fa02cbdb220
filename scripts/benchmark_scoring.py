"""Pool scoring speed of the app's default model (builtin:whisper-base): audio seconds per
second for what a scoring run does per clip (log-mel, frozen encoder, CTC head, greedy
decoding, uncertainty scores, embedding), on demo-corpus clips. Prints figures; asserts
nothing.

    .venv/bin/python scripts/benchmark_scoring.py            # 1 and 2 torch threads

A second row per thread count adds what a scoring run does where the promoted version kept
its language model: each draft also decoded by the lexicon beam search (asr.lm), here with a
lexicon of the demo language's 3,000 words and a 3-gram LM of 3,000 sentences drawn from
its word frequencies. The head is untrained, so its frames are nearly uniform: for the beam
search that is a worst case (a trained head's peaked frames prune the beam early).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import decode_audio  # noqa: E402
from asr.corpus import CorpusConfig, generate_corpus  # noqa: E402
from asr.lm import load_language_model, save_language_model  # noqa: E402
from asr.model import InferenceConfig, pick_device, transcribe_clips  # noqa: E402
from asr.text import TextRules, vocabulary_from_texts  # noqa: E402
from asr.whisper import whisper_ctc_model  # noqa: E402

CLIPS = 40
REPEATS = 3


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        summary = generate_corpus(CorpusConfig(clip_count=CLIPS, clips_per_recording=0), scratch)
        clips = [decode_audio(path) for path in sorted(Path(scratch, "clips").glob("*.wav"))]
        lexicon = [
            line.split("\t") for line in Path(scratch, "lexicon.tsv").read_text().split("\n")
        ]
        vocabulary = vocabulary_from_texts([], TextRules(alphabet="abcdefghijklmnoprstuvwyz'"))
        model = whisper_ctc_model(vocabulary)
        words = [row[1] for row in lexicon if len(row) == 3]
        weights = np.array([float(row[2]) for row in lexicon if len(row) == 3])
        rng = np.random.default_rng(0)
        texts = [" ".join(rng.choice(words, 8, p=weights / weights.sum())) for _ in range(3000)]
        texts += words  # every word at least once
        save_language_model(scratch, texts, 3)
        decoder = load_language_model(scratch, vocabulary)
    seconds = summary.seconds
    device = pick_device()
    config = InferenceConfig(device=device)
    for threads in (1, 2) if device == "cpu" else (torch.get_num_threads(),):
        torch.set_num_threads(threads)
        transcribe_clips(model, clips[:4], config)  # warm-up
        for name, decode in (("greedy", None), ("+ lexicon beam search", decoder.decode)):
            best = 0.0
            for _ in range(REPEATS):
                started = time.perf_counter()
                transcribe_clips(model, clips, config, decode)
                best = max(best, seconds / (time.perf_counter() - started))
            print(
                f"builtin:whisper-base scoring on {device}, {threads} thread(s), {name}: "
                f"{len(clips)} clips, {seconds:.0f} s of audio, best of {REPEATS}: "
                f"{best:.0f}x real time"
            )


if __name__ == "__main__":
    main()
