"""The offline export (asr.export) against the app's own inference: size, speed on one CPU
thread, and test-set CER/WER of float32 and int8 ONNX next to torch. Prints figures; asserts
nothing.

    python -m asr corpus --out demo/ --clips 1000
    python -m asr simulate demo/manifest.jsonl --out sim/ --budgets 10 --strategies random --seeds 1
    .venv/bin/python scripts/benchmark_export.py --model sim/runs/random/seed1/round1/model \\
        --manifest demo/manifest.jsonl --split sim/split.json

The test clips are the simulation's test set (split.json's "test" manifest lines), which the
model never trained on. Speed is audio seconds per wall second over all of them, greedy
decoding included, best of 3 after one warm-up pass, each engine on one thread.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from asr.checkpoint import load_ctc_model  # noqa: E402
from asr.export import ONNX_FILE, ONNX_INT8_FILE, export_offline  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.model import transcribe_clips  # noqa: E402

REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--split", required=True)
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(1)
    entries = read_manifest(args.manifest)
    test = [entries[line] for line in json.loads(Path(args.split).read_text())["test"]]
    clips = [decode_audio(entry.audio_filepath) for entry in test]
    references = [entry.text for entry in test]
    seconds = sum(len(clip) for clip in clips) / SAMPLE_RATE
    model = load_ctc_model(args.model)

    def greedy(log_probs: np.ndarray) -> str:
        best = log_probs.argmax(-1)
        collapsed = [int(t) for i, t in enumerate(best) if i == 0 or t != best[i - 1]]
        return model.vocabulary.decode(collapsed)

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        export_offline(model, scratch, args.model)
        exported = time.perf_counter() - started
        engines = {"torch (the app)": lambda: [t.text for t in transcribe_clips(model, clips)]}
        sizes = {}
        for label, name in (("ONNX float32", ONNX_FILE), ("ONNX int8", ONNX_INT8_FILE)):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(Path(scratch) / name), options)
            sizes[label] = (Path(scratch) / name).stat().st_size / 1e6

            def run(session=session):
                return [
                    greedy(session.run(["log_probs"], {"audio": clip[None, :]})[0][0])
                    for clip in clips
                ]

            engines[label] = run

        print(f"{len(clips)} test clips, {seconds / 60:.1f} min; export took {exported:.0f} s")
        print("| engine | size (MB) | x real time, 1 thread | test CER | test WER |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, engine in engines.items():
            texts = engine()  # warm-up, and the texts
            best = min(_timed(engine) for _ in range(REPEATS))
            size = f"{sizes[label]:.1f}" if label in sizes else ""
            cer, wer = jiwer.cer(references, texts), jiwer.wer(references, texts)
            print(f"| {label} | {size} | {seconds / best:.1f} | {cer:.2%} | {wer:.2%} |")


def _timed(engine) -> float:
    started = time.perf_counter()
    engine()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
