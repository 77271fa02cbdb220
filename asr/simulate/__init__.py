"""Replay the active-learning loop with an oracle: learning curves per selection strategy.

Given a manifest whose transcripts are all known, the simulation hides them and replays what
the app does, round after round:

    fixed test and dev sets (random, spread over the manifest, never trained on)
    round 1: label random clips up to the first budget (no model yet: the same for everyone,
             so it is trained once per seed and copied to the other strategies)
    round r: score the unlabeled pool with round r-1's model, label the clips the strategy
             picks up to budget r (the oracle reveals their transcripts), fine-tune, test

Every round is the app's round: asr.round.run_round with the settings of asr/recipe.py (one
table for both). It starts from the promoted model (the app's default; `start_from_promoted`
off: a new head each round), retries a collapsed run, lets the dev set choose between the LM
of the labeled transcripts and the one that also reads the pool's drafts, and promotes only a
model that beats the promoted one on dev; the promoted model scores the pool for the next
pick, as the app's scoring run does. With `self_train` the promoted model's confident drafts
train too. Every strategy gets the same seeds, budgets, test set, dev set and settings, so the
curves differ only by which clips were labeled.

Output directory:
    results.json            {"config", "config_hash", "rows": [one per strategy, seed, round]}
    split.json              the test and dev clips, as manifest line numbers from 0
    learning_curves.svg     WER and CER against labeled minutes, one line per strategy
    runs/<strategy>/seed<k>/round<r>/   labeled.json, model/ (asr.finetune's run directory)
Rows are written as each round finishes; running again with the same settings skips them
and picks an interrupted round up from its fine-tuning checkpoint.

The package: `loop.py` (the split, the rounds, the selection), `results.py` (results.json,
shared by parallel processes), `chart.py` (the SVG).
"""

from asr.simulate.chart import learning_curves_svg
from asr.simulate.loop import (
    MAX_CLIP_SECONDS,
    STRATEGIES,
    SimulationCancelled,
    SimulationConfig,
    SimulationProgress,
    pool_drafts,
    read_clip,
    select_clips,
    simulate,
    spread_order,
    take_minutes,
)
from asr.simulate.results import SimulationMismatch

__all__ = [
    "MAX_CLIP_SECONDS",
    "STRATEGIES",
    "SimulationCancelled",
    "SimulationConfig",
    "SimulationMismatch",
    "SimulationProgress",
    "learning_curves_svg",
    "pool_drafts",
    "read_clip",
    "select_clips",
    "simulate",
    "spread_order",
    "take_minutes",
]
