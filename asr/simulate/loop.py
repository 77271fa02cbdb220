"""The simulation's loop: the test/dev split, the rounds of every strategy and seed (each
the app's round, asr.round.run_round), the selection of clips to label. See asr.simulate."""

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
from asr.simulate.results import (
    file_sha256,
    previous_rows,
    row_key,
    write_atomically,
    write_results,
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
    cache_encoder: bool = True  # builtin:whisper-base: run the frozen layers once per clip

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
    settings = config.result_settings() | {"manifest_sha256": file_sha256(manifest)}
    config_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    results_path = output_dir / "results.json"
    rows = previous_rows(results_path, settings, config_hash)
    device = pick_device(config.device)

    plan = [
        (strategy, seed, number)
        for seed in config.seeds
        for strategy in config.strategies
        for number in range(1, len(config.budgets_minutes) + 1)
    ]
    finished = {row_key(row) for row in rows}
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
    write_atomically(output_dir / "split.json", json.dumps(split))
    inference = InferenceConfig(device=device)
    finished_rows = {row_key(row): row for row in rows}

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
                    write_results(results_path, settings, config_hash, rows)
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
                    write_atomically(labeled_path, json.dumps(labeled))
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
                write_results(results_path, settings, config_hash, rows)
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
    for row in previous_rows(results_path, settings, config_hash):
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
