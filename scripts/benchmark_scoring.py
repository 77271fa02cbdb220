"""Pool scoring speed of the app's default model (builtin:whisper-base): audio seconds per
second for what a scoring run does per clip (log-mel, frozen encoder, CTC head, greedy
decoding, uncertainty scores, embedding), on demo-corpus clips. Prints figures; asserts
nothing.

    .venv/bin/python scripts/benchmark_scoring.py            # 1 and 2 torch threads
"""

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import decode_audio  # noqa: E402
from asr.corpus import CorpusConfig, generate_corpus  # noqa: E402
from asr.model import InferenceConfig, transcribe_clips  # noqa: E402
from asr.text import TextRules, vocabulary_from_texts  # noqa: E402
from asr.whisper import whisper_ctc_model  # noqa: E402

CLIPS = 40
REPEATS = 3


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        summary = generate_corpus(CorpusConfig(clip_count=CLIPS, clips_per_recording=0), scratch)
        clips = [decode_audio(path) for path in sorted(Path(scratch, "clips").glob("*.wav"))]
    seconds = summary.seconds
    vocabulary = vocabulary_from_texts([], TextRules(alphabet="abcdefghijklmnoprstuvwyz'"))
    model = whisper_ctc_model(vocabulary)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = InferenceConfig(device=device)
    for threads in (1, 2) if device == "cpu" else (torch.get_num_threads(),):
        torch.set_num_threads(threads)
        transcribe_clips(model, clips[:4], config)  # warm-up
        best = 0.0
        for _ in range(REPEATS):
            started = time.perf_counter()
            transcribe_clips(model, clips, config)
            best = max(best, seconds / (time.perf_counter() - started))
        print(
            f"builtin:whisper-base scoring on {device}, {threads} thread(s): "
            f"{len(clips)} clips, {seconds:.0f} s of audio, best of {REPEATS}: {best:.0f}x real time"
        )


if __name__ == "__main__":
    main()
