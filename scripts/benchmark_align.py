"""Forced alignment (asr.align) against recordings whose clip times are known: where each
cut between two lines falls relative to the pause between their clips, the lines' scores,
and a wrong line's. Prints figures; asserts nothing.

    python -m asr corpus --out demo/ --clips 1000      # writes demo/recordings_truth.jsonl
    python -m asr simulate demo/manifest.jsonl --out sim/ --budgets 5,10 --strategies random
    .venv/bin/python scripts/benchmark_align.py --model sim/runs/random/seed1/round2/model \\
        --corpus demo/ --recordings 6

A cut is "in the pause" when it lies between the end of one clip and the start of the next
(each clip as the corpus placed it, its own quiet edges included), within --tolerance.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.align import align_by_pauses, align_transcript  # noqa: E402
from asr.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from asr.checkpoint import load_ctc_model  # noqa: E402
from asr.text import TextRules, normalize_text  # noqa: E402

WRONG_LINE = "the weather was fine and everyone went to the market"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a model that knows the letters")
    parser.add_argument("--by-pauses", action="store_true", help="no model: asr.align_by_pauses")
    parser.add_argument("--skip", type=int, default=0, help="recordings to leave out first")
    parser.add_argument("--corpus", required=True, help="a directory from `asr corpus`")
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=0.1, help="seconds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.by_pauses:

        def align(samples, lines):
            return align_by_pauses(samples, lines)

    else:
        model = load_ctc_model(args.model)

        def align(samples, lines):
            return align_transcript(model, samples, lines)

    corpus = Path(args.corpus)
    clips_of = defaultdict(list)
    for line in (corpus / "recordings_truth.jsonl").read_text().splitlines():
        row = json.loads(line)
        clips_of[row["recording"]].append(row)
    rules = TextRules(strip_characters=",.?!;:\"'")
    errors, scores, wrong_scores, seconds, spent = [], [], [], 0.0, 0.0
    for name in sorted(clips_of)[args.skip : args.skip + args.recordings]:
        rows = sorted(clips_of[name], key=lambda row: row["offset"])
        samples = decode_audio(corpus / name)
        lines = [normalize_text(row["text"], rules) for row in rows]
        started = time.perf_counter()
        aligned = align(samples, lines)
        spent += time.perf_counter() - started
        seconds += len(samples) / SAMPLE_RATE
        for cut, row, following in zip(aligned, rows, rows[1:], strict=False):
            pause_start, pause_end = row["offset"] + row["duration"], following["offset"]
            # how far the cut lies outside the pause (0 inside it)
            errors.append(max(pause_start - cut.end_seconds, cut.end_seconds - pause_end, 0.0))
        scores += [line.score for line in aligned]
        wrong = list(lines)
        wrong[len(wrong) // 2] = normalize_text(WRONG_LINE, rules)
        wrong_scores.append(align(samples, wrong)[len(wrong) // 2].score)
    errors = np.asarray(errors)
    inside = int((errors <= args.tolerance).sum())
    print(f"{args.recordings} recordings, {seconds:.0f} s, {len(errors)} cuts")
    print(f"cuts within {args.tolerance} s of the pause: {inside}/{len(errors)}")
    print(f"outside by: max {errors.max():.2f} s; over 0.05 s: {int((errors > 0.05).sum())}")
    print(
        f"right lines' scores: {min(scores):.2f}-{max(scores):.2f} "
        f"(median {np.median(scores):.2f}); a wrong line: "
        + ", ".join(f"{score:.3f}" for score in wrong_scores)
    )
    print(f"speed: {seconds / spent:.0f}x real time on one thread")


if __name__ == "__main__":
    main()
