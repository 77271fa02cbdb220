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
"""

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

import asr.round
from asr.audio import SAMPLE_RATE, decode_audio, read_wav16
from asr.evaluate import AS_GIVEN
from asr.finetune import Progress, TrainingCancelled
from asr.lm import language_model_decode
from asr.manifest import read_manifest
from asr.model import ClipTranscript, CtcModel, InferenceConfig, pick_device, transcribe_clips
from asr.recipe import BUILTIN_WHISPER, RoundConfig, round_config
from asr.round import ModelSource, PoolDraft, RoundData, draft_confidence
from asr.select import (
    pick_diverse_uncertain,
    pick_most_uncertain,
    pick_new_words,
    pick_random,
)
from asr.text import normalize_text, vocabulary_from_texts

STRATEGIES = (
    "random",
    "least-confidence",
    "entropy",
    "margin",
    "diverse",
    "new-words",
    # a bound, not a strategy a project can use: new-words run on the true transcripts
    "oracle-words",
)
MAX_CLIP_SECONDS = 120.0


class SimulationMismatch(ValueError):
    """The output directory holds results of a simulation with other settings."""


class SimulationCancelled(Exception):
    """should_cancel said stop; finished rows are saved, run again to go on."""


@dataclass(frozen=True)
class SimulationConfig:
    base: str = BUILTIN_WHISPER  # builtin:tiny, builtin:whisper-base or a checkpoint directory
    strategies: tuple[str, ...] = ("random", "entropy", "diverse")
    seeds: tuple[int, ...] = (0,)
    budgets_minutes: tuple[float, ...] = (2, 5, 10, 20, 30, 60)  # labeled minutes per round
    test_minutes: float = 5.0
    dev_minutes: float = 2.0
    split_seed: int = 0  # the test and dev sets: one draw, shared by every seed and strategy
    # the round's settings over asr/recipe.py's defaults for the base (any RoundConfig field,
    # or steps_per_minute): as VERNACULAR_ROUND_CONFIG is to the app
    round_overrides: dict = field(default_factory=dict)
    start_from_promoted: bool = True  # the app's default; off: each round a new head
    device: str = "auto"
    cache_encoder: bool = True  # builtin:whisper-base: encode each clip once (frozen encoder)

    def __post_init__(self) -> None:
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies are some of {', '.join(STRATEGIES)}; not {unknown}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct, and at least one")
        budgets = self.budgets_minutes
        if (
            not budgets
            or budgets[0] <= 0
            or any(b >= c for b, c in zip(budgets, budgets[1:], strict=False))
        ):
            raise ValueError(f"budgets must be positive and increasing, not {list(budgets)}")
        if self.test_minutes <= 0 or self.dev_minutes < 0:
            raise ValueError("the test set needs some minutes (and the dev set cannot be < 0)")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("each strategy once")
        self.round_config(self.budgets_minutes[-1])  # bad settings fail before any work
        if self.round_config(0).lm_order:
            try:
                import flashlight.lib.text.decoder  # noqa: F401
            except ImportError as error:
                raise ValueError(
                    "the LM needs flashlight-text (pip install flashlight-text), or --lm-order 0"
                ) from error

    def round_config(self, labeled_minutes: float, seed: int = 0) -> RoundConfig:
        """What a project's round at this many training minutes would use."""
        stored = round_config(self.base, labeled_minutes, self.round_overrides | {"seed": seed})
        return RoundConfig(**stored)

    def result_settings(self) -> dict:
        """What decides a row's numbers. Strategies and seeds only say which rows to run (so
        a finished run can be extended by one); the device and the cache change nothing."""
        settings = asdict(self)
        for name in ("strategies", "seeds", "device", "cache_encoder", "round_overrides"):
            settings.pop(name)
        settings["test_minutes"] = float(settings["test_minutes"])
        settings["dev_minutes"] = float(settings["dev_minutes"])
        settings["budgets_minutes"] = [float(minutes) for minutes in settings["budgets_minutes"]]
        # each round's resolved settings: the defaults table counts, not how it was typed
        settings["rounds"] = [
            asdict(self.round_config(minutes)) for minutes in self.budgets_minutes
        ]
        for config in settings["rounds"]:
            config.pop("seed")
        if self.base == BUILTIN_WHISPER:  # the head's recipe (which layers it reads) counts
            from asr.whisper import WhisperCtcHeadConfig

            settings["whisper_head"] = asdict(WhisperCtcHeadConfig())
        return json.loads(json.dumps(settings))  # as results.json holds them: lists, not tuples


@dataclass(frozen=True)
class SimulationProgress:
    rows_done: int  # finished (strategy, seed, round) rows, including earlier sessions'
    rows_total: int
    row: str  # e.g. "entropy seed 0 round 2"
    phase: str  # load, score, train, evaluate
    step: int  # within the phase
    total: int
    eta_seconds: float | None  # for the whole simulation, at this session's pace


@dataclass
class _Corpus:
    clips: list[np.ndarray]  # (n_i,) float32 at 16 kHz
    texts: list[str]
    seconds: np.ndarray  # (N,)
    test: list[int] = field(default_factory=list)
    dev: list[int] = field(default_factory=list)
    pool: list[int] = field(default_factory=list)  # candidates for labeling, manifest order


def simulate(
    manifest: str | Path,
    output_dir: str | Path,
    config: SimulationConfig = SimulationConfig(),
    *,
    progress: Callable[[SimulationProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[dict]:
    """Run (or finish) the simulation; returns every row of results.json.

    Raises SimulationMismatch when output_dir holds results of other settings, and
    SimulationCancelled when should_cancel() turns true (asked at every training step)."""
    output_dir = Path(output_dir)
    manifest = Path(manifest)
    settings = config.result_settings() | {"manifest_sha256": _file_sha256(manifest)}
    config_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    results_path = output_dir / "results.json"
    rows = _previous_rows(results_path, settings, config_hash)
    device = pick_device(config.device)

    plan = [
        (strategy, seed, number)
        for seed in config.seeds
        for strategy in config.strategies
        for number in range(1, len(config.budgets_minutes) + 1)
    ]
    finished = {_row_key(row) for row in rows}
    rows_done = sum(key in finished for key in plan)
    session_start, session_rows = time.monotonic(), 0

    def report(row: str, phase: str, step: int, total: int) -> None:
        if progress is None:
            return
        eta = None
        if session_rows:
            eta = (time.monotonic() - session_start) / session_rows * (len(plan) - rows_done)
        progress(SimulationProgress(rows_done, len(plan), row, phase, step, total, eta))

    corpus = _load_corpus(manifest, config, lambda done, total: report("", "load", done, total))
    vocabulary = vocabulary_from_texts(corpus.texts, AS_GIVEN)
    models = ModelSource(
        config.base, vocabulary, encoder_cache={} if config.cache_encoder else None
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    split = {"test": corpus.test, "dev": corpus.dev}  # manifest line numbers, from 0
    _write_atomically(output_dir / "split.json", json.dumps(split))
    inference = InferenceConfig(device=device)
    finished_rows = {_row_key(row): row for row in rows}

    for seed in config.seeds:  # in the plan's order: a partial run compares whole seeds
        for strategy in config.strategies:
            labeled: list[int] = []
            promoted_dir: Path | None = None  # the model that scores the pool, as in the app
            for number, budget in enumerate(config.budgets_minutes, start=1):
                name = f"{strategy} seed {seed} round {number}"
                run_dir = output_dir / "runs" / strategy / f"seed{seed}" / f"round{number}"
                labeled_path = run_dir / "labeled.json"
                if (strategy, seed, number) in finished:
                    labeled = json.loads(labeled_path.read_text())
                    row = finished_rows[(strategy, seed, number)]
                    if row["promoted"]:
                        promoted_dir = output_dir / row["model_dir"]
                    continue
                if should_cancel and should_cancel():
                    raise SimulationCancelled(f"stopped before {name}")
                started = time.monotonic()

                shared = (
                    _first_round_done(output_dir, results_path, settings, config_hash, seed)
                    if number == 1
                    else None
                )
                if shared is not None:
                    rows.append(_copy_first_round(*shared, run_dir, strategy, started))
                    _write_results(results_path, settings, config_hash, rows)
                    labeled = json.loads(labeled_path.read_text())
                    if rows[-1]["promoted"]:
                        promoted_dir = output_dir / rows[-1]["model_dir"]
                    rows_done, session_rows = rows_done + 1, session_rows + 1
                    report(name, "done", 1, 1)
                    continue

                promoted = models.load(promoted_dir) if promoted_dir is not None else None
                if labeled_path.is_file():  # chosen before an interruption: keep the choice
                    labeled = json.loads(labeled_path.read_text())
                else:
                    report(name, "score", 0, 1)
                    labeled = labeled + select_clips(
                        strategy,
                        corpus,
                        labeled,
                        budget * 60 - corpus.seconds[labeled].sum(),
                        seed,
                        number,
                        promoted,
                        inference,
                    )
                    run_dir.mkdir(parents=True, exist_ok=True)
                    _write_atomically(labeled_path, json.dumps(labeled))
                minutes = float(corpus.seconds[labeled].sum()) / 60
                recipe = config.round_config(minutes, seed)
                drafts, pool = [], []
                if promoted is not None:
                    report(name, "drafts", 0, 1)
                    drafts, pool = pool_drafts(
                        promoted, promoted_dir, corpus, labeled, inference, recipe.self_train
                    )
                del promoted

                def show(p: Progress, name=name) -> None:
                    report(name, p.phase, p.step, p.total)

                data = RoundData(
                    train=[(corpus.clips[i], corpus.texts[i]) for i in labeled],
                    dev=[(corpus.clips[i], corpus.texts[i]) for i in corpus.dev],
                    test=[(corpus.clips[i], corpus.texts[i]) for i in corpus.test],
                    drafts=drafts,
                    pool=pool,
                )
                log_path = run_dir / "round.log"
                try:
                    result = asr.round.run_round(  # the one round recipe, the same in the app
                        data,
                        recipe,
                        run_dir,
                        models,
                        promoted_dir=promoted_dir,
                        start_from_promoted=config.start_from_promoted and promoted_dir is not None,
                        device=device,
                        log=lambda line, path=log_path: _append(path, line),
                        progress=show,
                        should_cancel=should_cancel,
                    )
                except TrainingCancelled as cancelled:
                    raise SimulationCancelled(
                        f"stopped in {name} at step {cancelled.step}"
                    ) from None
                rows.append(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "round": number,
                        "budget_minutes": budget,
                        "labeled_minutes": round(minutes, 4),
                        "labeled_clips": len(labeled),
                        "wer": result.test.wer,
                        "cer": result.test.cer,
                        "wer_lm": result.test_lm.wer if result.test_lm else None,
                        "cer_lm": result.test_lm.cer if result.test_lm else None,
                        "lm_used": result.lm.use,
                        "dev_cer": result.dev_cer,
                        "promoted": result.promote,
                        "model_dir": str(result.model_dir.relative_to(output_dir)),
                        "attempts": len(result.attempts),
                        "collapsed": bool(result.finetune.collapsed),
                        "pseudo_minutes": round(result.pseudo_minutes, 2),
                        "pseudo_threshold": result.pseudo_threshold,
                        "steps": result.finetune.steps,
                        "best_step": result.finetune.best_step,
                        "train_seconds": round(sum(run["seconds"] for run in result.attempts), 2),
                        "wall_seconds": round(time.monotonic() - started, 2),
                    }
                )
                _write_results(results_path, settings, config_hash, rows)
                for checkpoint in run_dir.rglob("checkpoint.pt"):  # 80+ MB each; the row stays
                    checkpoint.unlink()
                if result.promote:
                    promoted_dir = result.model_dir
                rows_done, session_rows = rows_done + 1, session_rows + 1
                report(name, "done", 1, 1)
    return rows


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")


def _copy_first_round(
    row: dict, source: Path, run_dir: Path, strategy: str, started: float
) -> dict:
    """Round 1 is the same random draw and the same training for every strategy: copy
    another strategy's run directory and row instead of training it again."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("checkpoint.pt"))
    inside = Path(row["model_dir"]).relative_to(Path("runs", row["strategy"], f"seed{row['seed']}"))
    return row | {
        "model_dir": str(Path("runs", strategy, f"seed{row['seed']}") / inside),
        "strategy": strategy,
        "shared_from": row["strategy"],
        "train_seconds": 0.0,  # what this row cost, not the copied one
        "wall_seconds": round(time.monotonic() - started, 2),
    }


def _first_round_done(
    output_dir: Path, results_path: Path, settings: dict, config_hash: str, seed: int
) -> tuple[dict, Path] | None:
    """A finished round 1 of this seed whose run directory holds its model: (row, run
    directory). results.json holds every finished row, this process's and other `--jobs`
    processes'."""
    for row in _previous_rows(results_path, settings, config_hash):
        run_dir = output_dir / "runs" / row["strategy"] / f"seed{seed}" / "round1"
        if (row["seed"], row["round"]) == (seed, 1) and (run_dir / "model").is_dir():
            return row, run_dir
    return None


def pool_drafts(
    model: CtcModel,
    model_dir: Path,
    corpus: "_Corpus",
    labeled: list[int],
    inference: InferenceConfig,
    with_pool: bool = False,
) -> tuple[list[str], list[PoolDraft]]:
    """What the app's scoring run leaves for the next round, of the pool clips not in
    `labeled`, in pool order: their greedy drafts (for the LM) and, `with_pool`, the drafts
    annotators would see (LM-decoded where the version kept its LM) with their confidence."""
    taken = set(labeled)
    clips = [corpus.clips[i] for i in corpus.pool if i not in taken]
    decode = language_model_decode(model_dir, model.vocabulary) if with_pool else None
    transcripts = transcribe_clips(model, clips, inference, decode)
    drafts = [t.greedy_text for t in transcripts if t.greedy_text]
    pool = [
        PoolDraft(samples, t.text, draft_confidence(t), t.greedy_text)
        for samples, t in zip(clips, transcripts, strict=True)
        if with_pool
    ]
    return drafts, pool


# --- test/dev split and selection -------------------------------------------------------------


def spread_order(count: int, rng: np.random.Generator, parts: int = 20) -> list[int]:
    """A random order of range(count) that visits every part of the manifest early: the
    manifest is cut into `parts` consecutive stretches (recordings often are), each shuffled,
    and the order takes one clip from each stretch in turn."""
    stretches = [rng.permutation(part).tolist() for part in np.array_split(np.arange(count), parts)]
    rng.shuffle(stretches)
    longest = max((len(s) for s in stretches), default=0)
    return [s[i] for i in range(longest) for s in stretches if i < len(s)]


def take_minutes(order: Sequence[int], seconds: np.ndarray, wanted_seconds: float) -> list[int]:
    """The first clips of `order` whose durations add up to at least `wanted_seconds`."""
    taken, total = [], 0.0
    for index in order:
        if total >= wanted_seconds:
            break
        taken.append(int(index))
        total += float(seconds[index])
    return taken


def select_clips(
    strategy: str,
    corpus: _Corpus,
    labeled: list[int],
    wanted_seconds: float,
    seed: int,
    round_number: int,
    model: CtcModel | None,
    inference: InferenceConfig,
) -> list[int]:
    """Unlabeled pool clips (manifest indices) adding up to at least `wanted_seconds`.

    With no model (round 1) or for `random`, a seeded random draw: the same clips for every
    strategy in round 1. Otherwise the model scores the pool (and, for `diverse`, the labeled
    clips, whose embeddings it keeps away from); `new-words` reads the labeled transcripts.
    `oracle-words` is `new-words` with the pool's true transcripts for drafts: what a perfect
    draft would pick, the bound of any word-coverage strategy."""
    labeled_set = set(labeled)
    pool = [i for i in corpus.pool if i not in labeled_set]
    seconds = corpus.seconds[pool]
    known_words = {word for i in labeled for word in corpus.texts[i].split()}
    # enough picks for the minutes even if every pick were the shortest clip
    count = min(len(pool), int(wanted_seconds / max(seconds.min(), 1e-3)) + 1)
    if strategy == "oracle-words" and round_number > 1:
        order = pick_new_words([corpus.texts[i] for i in pool], seconds, known_words, count)
    elif strategy == "random" or model is None:
        order = pick_random(len(pool), len(pool), seed * 1000 + round_number)
    else:
        scoring = pool + labeled if strategy == "diverse" else pool
        transcripts = transcribe_clips(model, [corpus.clips[i] for i in scoring], inference)
        scored, known = transcripts[: len(pool)], transcripts[len(pool) :]
        if strategy == "diverse":
            order = pick_diverse_uncertain(
                np.stack([t.embedding for t in scored]),
                np.array([t.mean_frame_entropy for t in scored]),
                count,
                np.stack([t.embedding for t in known]) if known else None,
            )
        elif strategy == "new-words":
            order = pick_new_words([t.text for t in scored], seconds, known_words, count)
        else:
            order = pick_most_uncertain(_uncertainty(strategy, scored), len(pool))
    return [pool[i] for i in take_minutes(order, seconds, wanted_seconds)]


def _uncertainty(strategy: str, transcripts: list[ClipTranscript]) -> np.ndarray:
    attribute = {
        "least-confidence": "least_confidence",
        "entropy": "mean_frame_entropy",
        "margin": "top2_margin_uncertainty",
    }[strategy]
    return np.array([getattr(t, attribute) for t in transcripts])


def _load_corpus(
    manifest: Path, config: SimulationConfig, progress: Callable[[int, int], None]
) -> _Corpus:
    entries = read_manifest(manifest)
    untranscribed = sum(not entry.text.strip() for entry in entries)
    if untranscribed:
        raise ValueError(f"{manifest}: {untranscribed} clips without text; the oracle needs all")
    clips = []
    for entry in entries:
        clips.append(read_clip(entry.audio_filepath))
        progress(len(clips), len(entries))
    texts = [normalize_text(entry.text, AS_GIVEN) for entry in entries]
    seconds = np.array([len(clip) / SAMPLE_RATE for clip in clips])
    corpus = _Corpus(clips, texts, seconds)

    order = spread_order(len(clips), np.random.default_rng(config.split_seed))
    corpus.test = take_minutes(order, seconds, config.test_minutes * 60)
    rest = order[len(corpus.test) :]
    corpus.dev = take_minutes(rest, seconds, config.dev_minutes * 60) if config.dev_minutes else []
    held_out = set(corpus.test) | set(corpus.dev)
    corpus.pool = [i for i in range(len(clips)) if i not in held_out]
    pool_minutes = seconds[corpus.pool].sum() / 60
    if pool_minutes < config.budgets_minutes[-1]:
        raise ValueError(
            f"{manifest}: {pool_minutes:.1f} minutes left after the test and dev sets, "
            f"fewer than the largest budget ({config.budgets_minutes[-1]:g})"
        )
    return corpus


def read_clip(path: Path) -> np.ndarray:
    """A manifest's clip: 16 kHz mono 16-bit WAV (what `segment` and asr.corpus write) read
    directly, anything else decoded by ffmpeg."""
    samples = read_wav16(path)
    return samples if samples is not None else decode_audio(path, max_seconds=MAX_CLIP_SECONDS)


# --- results ----------------------------------------------------------------------------------


def _previous_rows(path: Path, settings: dict, config_hash: str) -> list[dict]:
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    if previous.get("config_hash") != config_hash:
        old = previous.get("config", {})
        changed = [
            f"{name} {settings.get(name)!r} here, {old.get(name)!r} there"
            for name in sorted(set(settings) | set(old))
            if settings.get(name) != old.get(name)
        ]
        raise SimulationMismatch(
            f"{path} holds a simulation with other settings ({'; '.join(changed)}): "
            "use another output directory, or delete it to start over"
        )
    return previous["rows"]


def _write_results(path: Path, settings: dict, config_hash: str, rows: list[dict]) -> list[dict]:
    """Write this process's rows, keeping rows on disk that it does not hold, and the chart
    of them all: several processes may share an output directory, each running other
    strategies (`--jobs`). Returns every row."""
    with _locked(path.with_name("results.lock")):
        mine = {_row_key(row) for row in rows}
        theirs = [
            row for row in _previous_rows(path, settings, config_hash) if _row_key(row) not in mine
        ]
        every_row = rows + theirs
        document = {"config_hash": config_hash, "config": settings, "rows": every_row}
        _write_atomically(path, json.dumps(document, indent=1) + "\n")
        _write_atomically(path.with_name("learning_curves.svg"), learning_curves_svg(every_row))
    return every_row


def _row_key(row: dict) -> tuple:
    return row["strategy"], row["seed"], row["round"]


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    """A kill while writing leaves the previous file whole (one partial file per process)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{path}: no such manifest")
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the chart --------------------------------------------------------------------------------

COLORS = {
    "random": "#555555",
    "least-confidence": "#1f77b4",
    "entropy": "#d62728",
    "margin": "#9467bd",
    "diverse": "#2ca02c",
    "new-words": "#ff7f0e",
    "oracle-words": "#8c564b",
}


def learning_curves_svg(rows: Sequence[dict]) -> str:
    """Panels of WER and CER (and WER with the LM, when every row has it) against labeled
    minutes: per strategy, the mean over seeds as a line with dots and, with several seeds,
    the min-max band. A plain SVG string."""
    metrics = ["wer", "cer"]
    if rows and all(row.get("wer_lm") is not None for row in rows):
        metrics.append("wer_lm")
    width, height = len(metrics) * PANEL_WIDTH + 40, PANEL_HEIGHT + 2 * MARGIN + 30
    strategies = [name for name in STRATEGIES if any(row["strategy"] == name for row in rows)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for panel, metric in enumerate(metrics):
        parts += _panel(rows, strategies, metric, left=20 + panel * PANEL_WIDTH + MARGIN)
    for number, strategy in enumerate(strategies):  # the legend, under the panels
        legend_x, legend_y = 20 + MARGIN + 130 * number, height - 14
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{COLORS[strategy]}" stroke-width="3"/>'
            f'<text x="{legend_x + 30}" y="{legend_y}">{escape(strategy)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


PANEL_WIDTH, PANEL_HEIGHT, MARGIN = 420, 300, 56
PANEL_TITLES = {"wer": "test WER", "cer": "test CER", "wer_lm": "test WER with the LM"}


def _panel(rows: Sequence[dict], strategies: list[str], metric: str, left: float) -> list[str]:
    top, plot_width, plot_height = MARGIN, PANEL_WIDTH - MARGIN - 10, PANEL_HEIGHT
    max_minutes = max((row["labeled_minutes"] for row in rows), default=1.0)
    max_rate = max((row[metric] for row in rows if math.isfinite(row[metric])), default=1.0)
    x_ticks, y_ticks = _nice_ticks(max_minutes), _nice_ticks(max(max_rate, 0.1))

    def x(minutes: float) -> float:
        return left + plot_width * minutes / x_ticks[-1]

    def y(rate: float) -> float:
        return top + plot_height * (1 - min(rate, y_ticks[-1]) / y_ticks[-1])

    parts = [
        f'<text x="{left + plot_width / 2}" y="{top - 12}" text-anchor="middle" '
        f'font-size="14" font-weight="bold">{PANEL_TITLES[metric]}</text>'
    ]
    for tick in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#e5e5e5"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{100 * tick:g}%</text>'
        )
    for tick in x_ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + plot_height}" '
            f'y2="{top + plot_height + 4}" stroke="black"/><text x="{x(tick):.1f}" '
            f'y="{top + plot_height + 18}" text-anchor="middle">{tick:g}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" '
        f'fill="none" stroke="black"/><text x="{left + plot_width / 2}" '
        f'y="{top + plot_height + 36}" text-anchor="middle">labeled minutes</text>'
    )
    for strategy in strategies:
        color = COLORS[strategy]
        points = _curve(rows, strategy, metric)  # (minutes, mean, low, high) per round
        if any(high > low for _, _, low, high in points):
            band = [(x(m), y(h)) for m, _, _, h in points]
            band += [(x(m), y(lo)) for m, _, lo, _ in reversed(points)]
            parts.append(
                f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in band)}" '
                f'fill="{color}" fill-opacity="0.15" stroke="none"/>'
            )
        line = " ".join(f"{x(m):.1f},{y(mean):.1f}" for m, mean, _, _ in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for minutes, mean, _, _ in points:
            parts.append(f'<circle cx="{x(minutes):.1f}" cy="{y(mean):.1f}" r="3" fill="{color}"/>')
    return parts


def _curve(
    rows: Sequence[dict], strategy: str, metric: str
) -> list[tuple[float, float, float, float]]:
    by_round: dict[int, list[dict]] = {}
    for row in rows:
        if row["strategy"] == strategy and math.isfinite(row[metric]):
            by_round.setdefault(row["round"], []).append(row)
    points = []
    for number in sorted(by_round):
        minutes = [row["labeled_minutes"] for row in by_round[number]]
        rates = [row[metric] for row in by_round[number]]
        points.append((float(np.mean(minutes)), float(np.mean(rates)), min(rates), max(rates)))
    return points


def _nice_ticks(highest: float) -> list[float]:
    """0, then round steps (1, 2, 2.5 or 5 x 10^k) up to the first at or above `highest`."""
    highest = max(highest, 1e-9)
    magnitude = 10 ** math.floor(math.log10(highest / 5))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if highest / (s * magnitude) <= 6)
    count = math.ceil(highest / step - 1e-9)
    return [round(step * i, 10) for i in range(count + 1)]
