"""How right are the drafts that self-training would take? Prints figures; asserts nothing.

    .venv/bin/python scripts/pseudo_label_quality.py MANIFEST SIMULATION_DIR \\
        --strategy random --seed 0 --round 2 --thresholds 0.9977,0.99,0.95

Reads a finished `asr simulate` run: the model promoted before round R (round R-1's, as in
the run) drafts a random sample of the pool clips still unlabeled in round R, decoded with its
LM where it kept one, and each draft's confidence is asr.round.draft_confidence. For each
threshold: how many clips reach it and their CER and WER against the true transcripts.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.evaluate import AS_GIVEN  # noqa: E402
from asr.lm import language_model_decode  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import error_rates  # noqa: E402
from asr.model import InferenceConfig, transcribe_clips  # noqa: E402
from asr.round import ModelSource, draft_confidence  # noqa: E402
from asr.simulate import read_clip  # noqa: E402
from asr.text import normalize_text, vocabulary_from_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("simulation")
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--round", type=int, default=2)
    parser.add_argument("--thresholds", default="0.9977,0.99,0.95")
    parser.add_argument("--sample", type=int, default=500, help="pool clips to draft")
    args = parser.parse_args()
    torch.set_num_threads(1)

    out = Path(args.simulation)
    runs = out / "runs" / args.strategy / f"seed{args.seed}"
    entries = read_manifest(args.manifest)
    texts = [normalize_text(entry.text, AS_GIVEN) for entry in entries]
    split = json.loads((out / "split.json").read_text())
    labeled = set(json.loads((runs / f"round{args.round}" / "labeled.json").read_text()))
    held_out = set(split["test"]) | set(split["dev"])
    pool = [i for i in range(len(entries)) if i not in held_out and i not in labeled]
    rng = np.random.default_rng(0)
    sample = sorted(rng.choice(pool, min(args.sample, len(pool)), replace=False).tolist())
    clips = [read_clip(entries[i].audio_filepath) for i in sample]

    results = json.loads((out / "results.json").read_text())
    row = next(
        r
        for r in results["rows"]
        if (r["strategy"], r["seed"], r["round"]) == (args.strategy, args.seed, args.round - 1)
    )
    model_dir = out / row["model_dir"]
    models = ModelSource(results["config"]["base"], vocabulary_from_texts(texts, AS_GIVEN))
    model = models.load(model_dir)
    drafts = transcribe_clips(
        model, clips, InferenceConfig(), language_model_decode(model_dir, model.vocabulary)
    )
    confidences = [draft_confidence(draft) for draft in drafts]
    print(f"{len(sample)} pool clips of round {args.round}, drafted by {row['model_dir']}")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        kept = [k for k, c in enumerate(confidences) if c >= threshold and drafts[k].text.split()]
        if not kept:
            print(f"confidence >= {threshold}: no clip")
            continue
        rates = error_rates(
            [texts[sample[k]] for k in kept], [drafts[k].text for k in kept], AS_GIVEN
        )
        seconds = sum(len(clips[k]) for k in kept) / 16000
        print(
            f"confidence >= {threshold}: {len(kept)} clips, {seconds / 60:.1f} min "
            f"({seconds / len(kept):.1f} s a clip); CER {rates.cer:.3f}, WER {rates.wer:.3f}"
        )
    every = error_rates([texts[i] for i in sample], [draft.text for draft in drafts], AS_GIVEN)
    print(f"every sampled draft: CER {every.cer:.3f}, WER {every.wer:.3f}")


if __name__ == "__main__":
    main()
