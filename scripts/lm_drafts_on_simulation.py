"""Test a finished simulation's round models again with the language model that also reads
the pool's drafts (what `simulate --lm-drafts` and the app's rounds do), without training
anything again.

    python scripts/lm_drafts_on_simulation.py MANIFEST SIM_DIR [--strategies random,margin]

For every round after the first, the previous round's model drafts the clips still
unlabeled; the lexicon and word n-gram LM are built from the round's labeled transcripts and
those drafts; the round's own model is tested with it. Prints one line per round (test WER and
CER with the LM, from results.json and with drafts) and writes SIM_DIR/lm_drafts.json.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.evaluate import AS_GIVEN  # noqa: E402
from asr.model import InferenceConfig  # noqa: E402
from asr.simulate import (  # noqa: E402
    SimulationConfig,
    _evaluate_with_language_model,
    _load_corpus,
    _ModelFactory,
    pool_drafts,
)
from asr.text import vocabulary_from_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("sim_dir", type=Path)
    parser.add_argument("--strategies", help="comma-separated; default: every one in results")
    args = parser.parse_args()
    torch.set_num_threads(1)

    results = json.loads((args.sim_dir / "results.json").read_text())
    settings = results["config"]
    order = settings.get("language_model_order")
    if not order:
        sys.exit(f"{args.sim_dir} was run without --lm-order: there is no LM figure to compare")
    config = SimulationConfig(
        base=settings["base"],
        budgets_minutes=tuple(settings["budgets_minutes"]),
        test_minutes=settings["test_minutes"],
        dev_minutes=settings["dev_minutes"],
        split_seed=settings["split_seed"],
    )
    corpus = _load_corpus(Path(args.manifest), config, lambda done, total: None)
    split = json.loads((args.sim_dir / "split.json").read_text())
    if (split["test"], split["dev"]) != (corpus.test, corpus.dev):
        sys.exit(f"{args.manifest} does not give the test and dev sets of {args.sim_dir}")
    make_model = _ModelFactory(config, vocabulary_from_texts(corpus.texts, AS_GIVEN))
    inference = InferenceConfig(device="cpu")

    wanted = args.strategies.split(",") if args.strategies else None
    rows = sorted(
        (r for r in results["rows"] if wanted is None or r["strategy"] in wanted),
        key=lambda r: (r["strategy"], r["seed"], r["round"]),
    )
    name = "lm_drafts.json" if wanted is None else f"lm_drafts-{'-'.join(wanted)}.json"
    out = []
    for row in rows:
        if row["round"] == 1:
            continue  # no model has drafted the pool before round 1
        runs = args.sim_dir / "runs" / row["strategy"] / f"seed{row['seed']}"
        run_dir = runs / f"round{row['round']}"
        labeled = json.loads((run_dir / "labeled.json").read_text())
        started = time.monotonic()
        drafts = pool_drafts(
            make_model.load(runs / f"round{row['round'] - 1}" / "model"), corpus, labeled, inference
        )
        with tempfile.TemporaryDirectory() as scratch:
            with_drafts = _evaluate_with_language_model(
                make_model.load(run_dir / "model"),
                corpus,
                labeled,
                order,
                Path(scratch),
                inference,
                drafts,
            )
        line = {
            "strategy": row["strategy"],
            "seed": row["seed"],
            "round": row["round"],
            "labeled_minutes": row["labeled_minutes"],
            "wer": row["wer"],
            "cer": row["cer"],
            "wer_lm": row["wer_lm"],
            "cer_lm": row["cer_lm"],
            "drafts": len(drafts),
            "wer_lm_drafts": with_drafts.wer,
            "cer_lm_drafts": with_drafts.cer,
        }
        out.append(line)
        print(
            f"{row['strategy']:>12} seed {row['seed']} round {row['round']} "
            f"{row['labeled_minutes']:5.1f} min  WER/CER with the LM {row['wer_lm']:.3f} / "
            f"{row['cer_lm']:.3f}, with drafts {with_drafts.wer:.3f} / {with_drafts.cer:.3f} "
            f"({len(drafts)} drafts, {time.monotonic() - started:.0f} s)",
            flush=True,
        )
        (args.sim_dir / name).write_text(json.dumps(out, indent=1))  # each round as it ends


if __name__ == "__main__":
    main()
