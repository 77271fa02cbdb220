"""`python -m asr`: the speech library from a shell.

    python -m asr segment long.mp3 --out clips/          long audio -> clip wavs + manifest
    python -m asr transcribe clips/manifest.jsonl --model m/ --out drafts.jsonl
    python -m asr finetune --train t.jsonl --dev d.jsonl --model builtin:whisper-base --out run/
    python -m asr evaluate --model run/model --manifest test.jsonl --out errors.jsonl
    python -m asr simulate corpus/manifest.jsonl --out sim/ --budgets 2,5,10
    python -m asr corpus --out demo/ --clips 400                 a synthetic demo corpus
    python -m asr pretrain recordings/ more.mp3 --out w2v/        wav2vec 2.0 on unlabeled audio
    python -m asr export run/model --out offline/       ONNX + a runner that needs no Vernacular
    python -m asr align story.mp3 story.txt [--model m/] --out clips/ untimed text -> clips

Manifests are NeMo-style JSONL (asr.manifest). Texts in manifests are taken as normalized.
Mistakes (a missing file, unreadable audio, a directory without a model) end with one line on
stderr and exit status 2; `--traceback` shows the whole story. Long work draws a progress bar
with an ETA on stderr.

A new subcommand is a `Subcommand(name, help, add_arguments, run)` appended to SUBCOMMANDS;
`run(args)` returns the exit status and raises CliError for the user's mistakes. Heavy
imports (torch, transformers) go inside `run`, so `--help` stays instant.
"""

import argparse
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from asr.audio import SAMPLE_RATE, AudioError, AudioTooLong, SegmentConfig, decode_audio
from asr.manifest import ManifestEntry, ManifestError, read_manifest, write_manifest

MAX_CLIP_SECONDS = 120.0  # transcribe/evaluate/finetune read clips, not recordings
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")  # in folders
CHUNK_CLIPS = 32  # clips decoded and transcribed at a time: bounds memory, paces the bar


class CliError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- progress bar -----------------------------------------------------------------------------


class ProgressBar:
    """`label [#####-----] 12/40 30% ETA 1:05` on one line of stderr, redrawn at most 10 times
    a second; where stderr is not a terminal (logs), a plain line every 10 seconds.

    Not tqdm (which is installed): the loops give their own ETA (finetune's median pace of
    the latest steps plus the dev evaluations to come; the simulation's rows left, none
    before a row has run in this session, as a resumed run skips rows at no cost), where
    tqdm computes one from the rate since the start, inflated by the slow first steps and
    by skipped rows; and tqdm writes carriage returns into a log file."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()
        self.drawn_at = -math.inf

    def update(self, done: int, *, eta_seconds: float | None = None, note: str = "") -> None:
        now = time.monotonic()
        if now - self.drawn_at < (0.1 if self.interactive else 10.0) and done < self.total:
            return
        self.drawn_at = now
        if eta_seconds is None and done > 0:
            eta_seconds = (now - self.started) / done * (self.total - done)
        filled = int(20 * min(done / self.total, 1.0))
        line = (
            f"{self.label} [{'#' * filled}{'-' * (20 - filled)}] {done}/{self.total} "
            f"{100 * done // self.total}% ETA {_clock(eta_seconds)}"
        )
        line += f" {note}" if note else ""
        if self.interactive:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    whole = int(round(seconds))
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours}:{minutes:02d}:{whole % 60:02d}" if hours else f"{minutes}:{whole % 60:02d}"


# --- shared steps -----------------------------------------------------------------------------


@contextmanager
def ctrl_c_stops_at_a_step(on_ctrl_c: Callable[[], None] | None = None) -> Iterator[Callable]:
    """Inside it, Ctrl-C does not raise: it is noted (and `on_ctrl_c` runs), and the yielded
    `should_cancel()` turns true, so a long loop stops where it can resume from. The previous
    handler is back on the way out (a second Ctrl-C after that interrupts as usual)."""
    pressed = []

    def note(*_) -> None:
        pressed.append(True)
        if on_ctrl_c is not None:
            on_ctrl_c()

    previous_handler = signal.signal(signal.SIGINT, note)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous_handler)


def _entries(inputs: Sequence[str]) -> list[ManifestEntry]:
    """Manifests (*.jsonl, *.json) and audio files, in the order given, as manifest entries."""
    entries = []
    for name in inputs:
        path = Path(name)
        if path.suffix in (".jsonl", ".json"):
            entries += read_manifest(path)
        elif path.is_file():
            entries.append(ManifestEntry(path))
        else:
            raise CliError(f"{path}: no such file")
    for entry in entries:
        if not entry.audio_filepath.is_file():
            raise CliError(f"{entry.audio_filepath}: no such audio file")
    return entries


def _decode(entry: ManifestEntry):
    try:
        return decode_audio(entry.audio_filepath, max_seconds=MAX_CLIP_SECONDS)
    except AudioTooLong as error:
        raise CliError(f"{error}; cut recordings into clips with `segment` first") from error


def _load_model(directory: str):
    """A model written by save_ctc_model (or `finetune`), with weights."""
    from asr.checkpoint import load_ctc_model

    path = Path(directory)
    if not path.is_dir():
        raise CliError(f"{path}: no such model directory")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise CliError(f"{path}: no model weights (*.safetensors) in this directory")
    return load_ctc_model(path)


def _check_base(spec: str) -> None:
    """A base model spec the round can start from (asr.recipe.base_kind), or CliError."""
    from asr.recipe import base_kind

    try:
        kind = base_kind(spec)
    except ValueError as error:
        raise CliError(str(error)) from error
    if kind == "encoder" and not Path(spec).is_dir():
        raise CliError(f"{spec}: no such model directory (or builtin:whisper-base, builtin:tiny)")


def _quiet_transformers() -> None:
    # its own progress bars and load reports would scramble ours
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _transcribe_with_progress(model, entries: list[ManifestEntry], label: str, args):
    """Decode and transcribe CHUNK_CLIPS clips at a time -> (transcripts, durations)."""
    from asr.model import InferenceConfig, transcribe_clips

    config = InferenceConfig(device=_device(args.device))
    bar = ProgressBar(label, len(entries))
    transcripts, durations = [], []
    for start in range(0, len(entries), CHUNK_CLIPS):
        clips = [_decode(entry) for entry in entries[start : start + CHUNK_CLIPS]]
        transcripts += transcribe_clips(model, clips, config)
        durations += [len(clip) / SAMPLE_RATE for clip in clips]
        bar.update(len(transcripts))
    bar.close()
    return transcripts, durations


def _device(name: str) -> str:
    from asr.model import pick_device

    return pick_device(name)


# --- segment ----------------------------------------------------------------------------------


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="recordings in any format ffmpeg reads")
    parser.add_argument("--out", required=True, help="directory for clips/ and manifest.jsonl")
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero")
    parser.add_argument("--min-seconds", type=float, default=SegmentConfig.min_seconds)
    parser.add_argument("--max-seconds", type=float, default=SegmentConfig.max_seconds)


def run_segment(args: argparse.Namespace) -> int:
    from asr.audio import segment_speech, write_wav

    recordings = [Path(name) for name in args.audio]
    for path in recordings:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    try:
        config = SegmentConfig(args.min_seconds, args.max_seconds, vad=args.vad)
    except ValueError as error:
        raise CliError(str(error)) from error
    out = Path(args.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries, used_stems = [], set()
    bar = ProgressBar("segment", len(recordings))
    for done, path in enumerate(recordings, start=1):
        samples = decode_audio(path)
        stem = path.stem
        while stem in used_stems:  # two recordings with one name, from different folders
            stem += "_"
        used_stems.add(stem)
        for number, span in enumerate(segment_speech(samples, config), start=1):
            clip_path = out / "clips" / f"{stem}-{number:04d}.wav"
            write_wav(clip_path, samples[span.start : span.end])
            extra = {"source": str(path), "offset": round(span.start_seconds, 3)}
            entries.append(ManifestEntry(clip_path, span.duration_seconds, "", extra))
        bar.update(done)
    bar.close()
    write_manifest(entries, out / "manifest.jsonl")
    print(f"{len(entries)} clips, {sum(e.duration for e in entries):.1f} s -> {out}/manifest.jsonl")
    return 0


# --- transcribe -------------------------------------------------------------------------------


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="manifests (*.jsonl) and/or audio clips")
    parser.add_argument("--model", required=True, help="a saved CTC model directory")
    parser.add_argument("--out", required=True, help="manifest to write, with text filled in")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1...")


def run_transcribe(args: argparse.Namespace) -> int:
    entries = _entries(args.inputs)
    _quiet_transformers()
    model = _load_model(args.model)
    transcripts, durations = _transcribe_with_progress(model, entries, "transcribe", args)
    written = [
        ManifestEntry(entry.audio_filepath, duration, transcript.text, entry.extra)
        for entry, transcript, duration in zip(entries, transcripts, durations, strict=True)
    ]
    write_manifest(written, args.out)
    print(f"{len(written)} clips transcribed -> {args.out}")
    return 0


# --- finetune ---------------------------------------------------------------------------------


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", required=True, help="manifest of labeled training clips")
    parser.add_argument("--dev", required=True, help="manifest of labeled dev clips")
    parser.add_argument(
        "--model",
        required=True,
        help="a saved CTC model to continue; builtin:whisper-base (the app's default), "
        "builtin:tiny, or any waveform encoder checkpoint directory, which get a fresh CTC "
        "head over the characters of the transcripts",
    )
    parser.add_argument("--out", required=True, help="run directory: model/ and checkpoint.pt")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    # None = FinetuneConfig's default; not read here so that --help needs no torch import
    training = parser.add_argument_group("training (defaults: asr.finetune.FinetuneConfig)")
    for flag, kind, field_name in (
        ("--max-steps", int, "max_steps"),
        ("--batch-size", int, "batch_size"),
        ("--accumulate", int, "gradient_accumulation_steps"),
        ("--learning-rate", float, "learning_rate"),
        ("--warmup-steps", int, "warmup_steps"),
        ("--eval-every", int, "eval_every"),
        ("--patience", int, "patience"),
        ("--mask-time-prob", float, "mask_time_prob"),
        ("--max-clip-seconds", float, "max_clip_seconds"),
        ("--seed", int, "seed"),
        ("--device", str, "device"),
        ("--precision", str, "precision"),
    ):
        metavar = {int: "N", float: "X", str: "NAME"}[kind]
        training.add_argument(
            flag, type=kind, dest=f"config_{field_name}", metavar=metavar, help=field_name
        )
    training.add_argument(
        "--train-feature-encoder",
        action="store_false",
        default=None,
        dest="config_freeze_feature_encoder",
        help="also train the convolutional feature encoder (frozen by default)",
    )


def run_finetune(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise CliError(f"{out} is not empty: pass --resume to continue that run, or another --out")
    train_entries, dev_entries = _entries([args.train]), _entries([args.dev])
    _check_base(args.model)

    _quiet_transformers()
    from asr.finetune import FinetuneConfig, Progress, TrainingCancelled, finetune
    from asr.recipe import base_kind
    from asr.round import ModelSource
    from asr.text import TextRules, normalize_text, vocabulary_from_texts

    overrides = {
        name.removeprefix("config_"): value
        for name, value in vars(args).items()
        if name.startswith("config_") and value is not None
    }
    config = FinetuneConfig(**overrides)

    as_given = TextRules(lowercase=False)  # NFC and whitespace only: manifests are normalized
    bar = ProgressBar("load", len(train_entries) + len(dev_entries))
    labeled = []
    for entry in train_entries + dev_entries:
        labeled.append((_decode(entry), normalize_text(entry.text, as_given)))
        bar.update(len(labeled))
    bar.close()
    train, dev = labeled[: len(train_entries)], labeled[len(train_entries) :]

    if base_kind(args.model) == "saved":
        model = _load_model(args.model)
    else:  # a new CTC head for these transcripts' letters, on the base the app would use
        vocabulary = vocabulary_from_texts([text for _, text in train + dev], as_given)
        model = ModelSource(args.model, vocabulary).fresh(config.seed)

    bar = ProgressBar("finetune", config.max_steps)

    def show(report: Progress) -> None:
        note = "evaluating" if report.phase == "evaluate" else f"loss {report.loss:.3f}"
        bar.update(report.step, eta_seconds=report.eta_seconds, note=note)

    try:
        with ctrl_c_stops_at_a_step() as cancelled:
            result = finetune(
                model, train, dev, out, config, progress=show, should_cancel=cancelled
            )
    except TrainingCancelled as stopped:
        bar.close()
        print(f"stopped at step {stopped.step}; add --resume to continue", file=sys.stderr)
        return 130
    bar.close()
    print(
        f"best dev CER {result.best_dev_cer:.4f} at step {result.best_step} "
        f"(started at {result.initial_dev_cer:.4f}); {result.steps} steps in "
        f"{result.seconds:.0f} s{', stopped early' if result.stopped_early else ''}; "
        f"{result.skipped_clips} training clips skipped"
    )
    print(f"model: {result.model_dir}")
    return 0


# --- evaluate ---------------------------------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a saved CTC model directory")
    parser.add_argument("--manifest", required=True, help="clips with reference text")
    parser.add_argument("--out", help="write each clip's errors here (JSONL)")
    parser.add_argument("--device", default="auto")


def run_evaluate(args: argparse.Namespace) -> int:
    entries = _entries([args.manifest])
    _quiet_transformers()
    model = _load_model(args.model)
    from asr.evaluate import AS_GIVEN
    from asr.metrics import error_rates

    transcripts, _ = _transcribe_with_progress(model, entries, "evaluate", args)
    rates = error_rates([e.text for e in entries], [t.text for t in transcripts], AS_GIVEN)
    if args.out:
        rows = [
            ManifestEntry(
                entry.audio_filepath,
                entry.duration,
                clip.reference,
                {"hypothesis": clip.hypothesis, "wer": clip.wer, "cer": clip.cer},
            )
            for entry, clip in zip(entries, rates.clips, strict=True)
        ]
        write_manifest(rows, args.out)
    print(f"WER {rates.wer:.4f}  CER {rates.cer:.4f}  ({len(entries)} clips)")
    return 0


# --- simulate ---------------------------------------------------------------------------------


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="clips with known transcripts (the oracle)")
    parser.add_argument("--out", required=True, help="directory: results.json, the SVG, runs/")
    parser.add_argument(
        "--base",
        default="builtin:whisper-base",
        help="builtin:whisper-base, builtin:tiny (tests) or a checkpoint directory",
    )
    parser.add_argument(
        "--strategies",
        default="random,entropy,diverse",
        help="comma-separated: random, least-confidence, entropy, margin, diverse, new-words; "
        "oracle-words (new-words on the true transcripts: a bound, for benchmarks)",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated integers")
    parser.add_argument(
        "--budgets", default="2,5,10,20,30,60", help="labeled minutes after each round"
    )
    parser.add_argument("--test-minutes", type=float, default=5.0)
    parser.add_argument("--dev-minutes", type=float, default=2.0)
    parser.add_argument("--split-seed", type=int, default=0, help="draws the test and dev sets")
    rounds = parser.add_argument_group(
        "the rounds (defaults: asr/recipe.py, the table the app's rounds read)"
    )
    rounds.add_argument("--steps", type=int, help="training steps per round (default: by base)")
    rounds.add_argument(
        "--steps-per-minute",
        type=float,
        help="a round trains max(--steps, this x its labeled minutes) (default: by base)",
    )
    rounds.add_argument("--lr", type=float, help="peak learning rate (default: by base)")
    rounds.add_argument("--batch-size", type=int, help="clips per step (default: by base)")
    rounds.add_argument("--warmup-steps", type=int, help="default: a tenth of the steps")
    rounds.add_argument("--eval-every", type=int, help="dev evaluations; default: a tenth")
    rounds.add_argument(
        "--lm-order",
        type=int,
        help="the lexicon + word n-gram LM's order (default 3, as in the app; 0: none)",
    )
    rounds.add_argument(
        "--self-train",
        action="store_true",
        help="rounds also train on the promoted model's confident drafts of the pool "
        "(the project setting 'Self-training')",
    )
    rounds.add_argument(
        "--fresh-heads",
        action="store_true",
        help="each round starts from a new head, not from the promoted model (the project "
        "setting 'Continue from the promoted model', off)",
    )
    rounds.add_argument(
        "--round-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other field of asr.recipe.RoundConfig, e.g. pseudo_weight=0.3 (repeatable)",
    )
    parser.add_argument(
        "--no-encoder-cache",
        action="store_true",
        help="run the Whisper encoder at every step instead of once per clip",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes, each running some of the strategies with one torch thread "
        "(CPU: one per core); they share --out",
    )


def _simulate_in_processes(args: argparse.Namespace, config) -> int:
    """Split the strategies over `--jobs` child processes of this command (one torch thread
    each, logs in OUT/jobs/), draw one progress bar from the rows they write, and pass Ctrl-C
    on: each child stops at the end of its training step, and the same command resumes."""
    import json
    import os
    import subprocess

    jobs = min(args.jobs, len(config.strategies))
    groups = [config.strategies[job::jobs] for job in range(jobs)]
    out = Path(args.out)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    package_root = str(Path(__file__).resolve().parent.parent)  # where `asr` is importable
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    plan = {(s, seed, n) for s in config.strategies for seed in config.seeds
            for n in range(1, len(config.budgets_minutes) + 1)}  # fmt: skip
    bar = ProgressBar("simulate", len(plan))
    children: list[tuple[subprocess.Popen, TextIO]] = []

    def stop() -> None:  # each child stops at the end of its training step, as one would
        for child, _ in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    with ctrl_c_stops_at_a_step(on_ctrl_c=stop) as interrupted:
        try:
            for job, group in enumerate(groups):
                argv = [*args.raw_argv, f"--strategies={','.join(group)}", "--jobs=1"]
                log = open(out / "jobs" / f"job{job}.log", "w")  # noqa: SIM115 (closed below)
                child = subprocess.Popen(
                    [sys.executable, "-m", "asr", *argv], stderr=log, stdout=log, env=env
                )
                children.append((child, log))
            while any(child.poll() is None for child, _ in children):
                if any(child.returncode not in (None, 0) for child, _ in children):
                    stop()  # one failed: the others would only finish a partial comparison
                time.sleep(1.0)
                try:
                    rows = json.loads((out / "results.json").read_text())["rows"]
                except (OSError, ValueError, KeyError):
                    rows = []
                done = sum((r["strategy"], r["seed"], r["round"]) in plan for r in rows)
                bar.update(done, note=f"{jobs} processes, logs in {out / 'jobs'}")
        finally:
            for child, log in children:  # never leave a child running on the shared --out
                if child.poll() is None:
                    child.terminate()
                child.wait()
                log.close()
    bar.close()
    codes = [child.returncode for child, _ in children]
    for job, code in enumerate(codes):
        if code not in (0, 130):
            lines = (out / "jobs" / f"job{job}.log").read_text().strip().splitlines()
            last = lines[-1] if lines else ""
            raise CliError(f"job {job} failed with exit status {code}: {last}")
    if interrupted() or 130 in codes:
        print("stopped; run the same command again to go on", file=sys.stderr)
        return 130
    rows = json.loads((out / "results.json").read_text())["rows"]
    print(f"{len(rows)} rows -> {out / 'results.json'}, chart -> {out / 'learning_curves.svg'}")
    return 0


def _comma_list(text: str, kind: type, flag: str) -> tuple:
    try:
        return tuple(kind(item) for item in text.split(",") if item.strip())
    except ValueError as error:
        raise CliError(f"{flag}: {text!r} is not a comma-separated list of numbers") from error


def _setting_value(name: str, text: str):
    """A --round-setting value, typed as the RoundConfig field it sets."""
    from asr.recipe import RoundConfig

    kinds = {field.name: field.type for field in dataclasses.fields(RoundConfig)}
    kind = kinds.get(name)
    if kind is None:
        raise CliError(f"--round-setting: {name!r} is not a round setting ({', '.join(kinds)})")
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(text)
        return None if text.lower() == "none" else int(text)  # int | None
    except ValueError:
        raise CliError(f"--round-setting: {name}={text!r} is not a {kind}") from None


def run_simulate(args: argparse.Namespace) -> int:
    base = args.base
    _check_base(base)
    _entries([args.manifest])  # a missing manifest or audio file: one line, before torch loads
    _quiet_transformers()
    from asr.simulate import SimulationCancelled, SimulationConfig, simulate

    flags = {
        "max_steps": args.steps,
        "steps_per_minute": args.steps_per_minute,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup_steps,
        "eval_every": args.eval_every,
        "lm_order": args.lm_order,
        "self_train": args.self_train or None,
    }
    for setting in args.round_setting:
        name, _, value = setting.partition("=")
        flags[name.strip()] = _setting_value(name.strip(), value.strip())
    try:
        config = SimulationConfig(
            base=base,
            strategies=tuple(name.strip() for name in args.strategies.split(",") if name.strip()),
            seeds=_comma_list(args.seeds, int, "--seeds"),
            budgets_minutes=_comma_list(args.budgets, float, "--budgets"),
            test_minutes=args.test_minutes,
            dev_minutes=args.dev_minutes,
            split_seed=args.split_seed,
            round_overrides={name: value for name, value in flags.items() if value is not None},
            start_from_promoted=not args.fresh_heads,
            device=args.device,
            cache_encoder=not args.no_encoder_cache,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    if args.jobs > 1 and len(config.strategies) > 1:
        return _simulate_in_processes(args, config)
    bar = None

    def show(report) -> None:
        nonlocal bar
        if bar is None or bar.total != max(report.rows_total, 1):
            bar = ProgressBar("simulate", report.rows_total)
        note = f"{report.row} {report.phase}" if report.row else f"loading clips {report.step}"
        if report.phase in ("train", "evaluate") and report.total > 1:
            note += f" {report.step}/{report.total}"
        # no estimate until a row has run in this session: rows skipped on resume took no time
        eta = math.inf if report.eta_seconds is None else report.eta_seconds
        bar.update(report.rows_done, eta_seconds=eta, note=note)

    try:
        with ctrl_c_stops_at_a_step() as cancelled:
            rows = simulate(args.manifest, args.out, config, progress=show, should_cancel=cancelled)
    except SimulationCancelled as stopped:
        if bar:
            bar.close()
        print(f"{stopped}; run the same command again to go on", file=sys.stderr)
        return 130
    if bar:
        bar.close()
    out = Path(args.out)
    print(f"{len(rows)} rows -> {out / 'results.json'}, chart -> {out / 'learning_curves.svg'}")
    for row in rows:
        print(
            f"{row['strategy']:>16} seed {row['seed']} round {row['round']}: "
            f"{row['labeled_minutes']:6.2f} min  WER {row['wer']:.3f}  CER {row['cer']:.3f}"
        )
    return 0


# --- corpus -----------------------------------------------------------------------------------


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="directory: clips/, manifest.jsonl, recordings/"
    )
    parser.add_argument("--clips", type=int, default=400, help="utterances (about 4 s each)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same corpus, byte for byte")
    parser.add_argument(
        "--clips-per-recording", type=int, default=40, help="long recordings for the app (0: none)"
    )


def run_corpus(args: argparse.Namespace) -> int:
    from asr.corpus import CorpusConfig, EspeakNotAvailable, generate_corpus

    if args.clips < 1:
        raise CliError("--clips must be at least 1")
    config = CorpusConfig(
        seed=args.seed, clip_count=args.clips, clips_per_recording=args.clips_per_recording
    )
    bar = ProgressBar("corpus", args.clips)
    try:
        # Clips already on disk are read, not rendered again: an interrupted run resumes.
        summary = generate_corpus(config, args.out, progress=lambda done, total: bar.update(done))
    except EspeakNotAvailable as error:
        raise CliError(str(error)) from error
    bar.close()
    print(
        f"{summary.clip_count} clips ({summary.rendered} new), {summary.seconds / 60:.1f} min, "
        f"{summary.recording_count} recordings -> {summary.manifest}"
    )
    return 0


# --- pretrain ---------------------------------------------------------------------------------


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        help="unlabeled audio of any length: files, folders of audio files, manifests (*.jsonl)",
    )
    parser.add_argument("--out", required=True, help="directory: checkpoint.pt, then the model")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out; only --max-steps, --max-minutes and --device may change",
    )
    # None = PretrainConfig's default; not read here so that --help needs no torch import
    training = parser.add_argument_group("training (defaults: asr.pretrain.PretrainConfig)")
    for flag, kind, field_name in (
        ("--max-steps", int, "max_steps"),
        ("--batch-size", int, "batch_size"),
        ("--seed", int, "seed"),
        ("--device", str, "device"),
    ):
        metavar = {int: "N", str: "NAME"}[kind]
        training.add_argument(
            flag, type=kind, dest=f"config_{field_name}", metavar=metavar, help=field_name
        )
    training.add_argument(
        "--max-minutes", type=float, metavar="X", help="wall-clock budget over all sessions"
    )


def _audio_files(inputs: Sequence[str]) -> list[str]:
    """The inputs with each folder replaced by the audio files under it, sorted."""
    names = []
    for name in inputs:
        folder = Path(name)
        if not folder.is_dir():
            names.append(name)
            continue
        found = sorted(path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES)
        if not found:
            raise CliError(f"{folder}: no audio files ({' '.join(AUDIO_SUFFIXES)}) in this folder")
        names += [str(path) for path in found]
    return names


def _mean_of_last_10(values: Sequence[float]) -> float:
    tail = values[-10:]  # one step's loss is noisy
    return sum(tail) / len(tail) if tail else math.nan


def run_pretrain(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.resume:
            raise CliError(
                f"{out} is not empty: pass --resume to continue that run, or another --out"
            )
        if not (out / "checkpoint.pt").is_file():
            raise CliError(f"{out} holds no checkpoint.pt to resume from")
    entries = _entries(_audio_files(args.inputs))

    _quiet_transformers()
    from asr.pretrain import (
        PretrainConfig,
        PretrainingCancelled,
        PretrainProgress,
        pretrain_wav2vec2,
    )

    overrides = {
        name.removeprefix("config_"): value
        for name, value in vars(args).items()
        if name.startswith("config_") and value is not None
    }
    if args.max_minutes is not None:
        overrides["max_seconds"] = 60 * args.max_minutes
    config = PretrainConfig(**overrides)

    bar = ProgressBar("load", len(entries))
    recordings = []
    for entry in entries:
        recordings.append(decode_audio(entry.audio_filepath))  # recordings: no clip limit
        bar.update(len(recordings))
    bar.close()

    bar = ProgressBar("pretrain", config.max_steps)

    def show(report: PretrainProgress) -> None:
        note = f"loss {report.loss:.3f} perplexity {report.perplexity:.0f}"
        bar.update(report.step, eta_seconds=report.eta_seconds, note=note)

    try:
        with ctrl_c_stops_at_a_step() as cancelled:
            result = pretrain_wav2vec2(
                recordings, config, out, progress=show, should_cancel=cancelled
            )
    except PretrainingCancelled as stopped:
        bar.close()
        print(
            f"stopped at step {stopped.step}; run the same command with --resume to go on",
            file=sys.stderr,
        )
        return 130
    bar.close()
    codevectors = config.num_codevector_groups * config.num_codevectors_per_group
    print(
        f"loss {_mean_of_last_10(result.losses):.3f} (contrastive "
        f"{_mean_of_last_10(result.contrastive_losses):.3f}, chance "
        f"{math.log(1 + config.num_negatives):.3f}; codebook perplexity "
        f"{_mean_of_last_10(result.perplexities):.0f} of {codevectors}), "
        f"mean of the last {min(len(result.losses), 10)} steps"
    )
    print(f"{len(result.losses)} steps in {result.seconds:.0f} s; model: {out}")
    print(
        f"fine-tune it: python -m asr finetune --model {out} --train T.jsonl --dev D.jsonl --out R/"
    )
    return 0


# --- align ------------------------------------------------------------------------------------

PUNCTUATION = '.,;:!?"“”«»()[]'  # what a project strips by default, dropped before aligning


def add_align_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", help="the audio, in any format ffmpeg reads")
    parser.add_argument("transcript", help="its text: one utterance a line, or a whole text")
    parser.add_argument(
        "--model",
        help="a model that knows the letters; without one, the text is placed by the "
        "recording's pauses and the lines' lengths, and every clip is marked for review",
    )
    parser.add_argument("--out", required=True, help="directory for clips/ and manifest.jsonl")
    parser.add_argument("--device", default="auto")


def run_align(args: argparse.Namespace) -> int:
    from asr.align import (
        REVIEW_BELOW,
        AlignmentError,
        align_by_pauses,
        align_transcript,
        transcript_lines,
    )
    from asr.audio import write_wav
    from asr.text import TextRules, normalize_text

    recording, transcript = Path(args.recording), Path(args.transcript)
    for path in (recording, transcript):
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    rules = TextRules(strip_characters=PUNCTUATION)
    lines = [
        normalize_text(line, rules) for line in transcript_lines(transcript.read_text("utf-8"))
    ]
    model = None
    if args.model:
        _quiet_transformers()
        model = _load_model(args.model)
        for number, line in enumerate(lines, start=1):
            if unknown := model.vocabulary.unknown_letters(line):
                raise CliError(
                    f"{transcript}: utterance {number} has letters the model does not know: "
                    + " ".join(unknown)
                )
    samples = decode_audio(recording)
    try:
        if model is None:
            aligned = align_by_pauses(samples, lines)
        else:
            aligned = align_transcript(model, samples, lines, _device(args.device))
    except AlignmentError as error:
        raise CliError(f"{transcript}: {error}") from error
    out = Path(args.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for number, line in enumerate(aligned, start=1):
        path = out / "clips" / f"{recording.stem}_{number:04d}.wav"
        write_wav(path, samples[line.start_sample : line.end_sample])
        review = model is None or line.score < REVIEW_BELOW  # pauses alone hear no words
        extra = {"alignment_score": round(line.score, 4), "review": review}
        extra |= {"offset": round(line.start_seconds, 3)}
        entries.append(
            ManifestEntry(
                path, (line.end_sample - line.start_sample) / SAMPLE_RATE, line.text, extra
            )
        )
    write_manifest(entries, out / "manifest.jsonl")
    low = sum(entry.extra["review"] for entry in entries)
    if model is None:
        print(
            f"{len(entries)} clips -> {out / 'manifest.jsonl'}, placed by the recording's "
            'pauses and the lines\' lengths (no model): all marked "review": true, listen '
            "before training on them"
        )
        return 0
    print(
        f"{len(entries)} clips -> {out / 'manifest.jsonl'}; {low} scored under {REVIEW_BELOW} "
        '("review": true): listen to those before training on them'
    )
    return 0


# --- export -----------------------------------------------------------------------------------


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model directory (finetune's out/model, or a round's)")
    parser.add_argument("--out", required=True, help="the folder to write (created; must be empty)")


def run_export(args: argparse.Namespace) -> int:
    from asr.export import export_offline

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"{out}: exists and is not an empty folder")
    _quiet_transformers()
    model = _load_model(args.model)
    print(f"exporting {args.model} (ONNX float32 and int8)...", file=sys.stderr)
    for path in export_offline(model, out, args.model):
        print(f"{path}\t{path.stat().st_size / 1e6:.1f} MB")
    return 0


# --- dispatch ---------------------------------------------------------------------------------

SUBCOMMANDS = [
    Subcommand("segment", "cut long recordings into clips", add_segment_arguments, run_segment),
    Subcommand(
        "transcribe", "write a model's text for clips", add_transcribe_arguments, run_transcribe
    ),
    Subcommand(
        "finetune", "train a CTC model on labeled clips", add_finetune_arguments, run_finetune
    ),
    Subcommand(
        "evaluate", "WER/CER of a model on labeled clips", add_evaluate_arguments, run_evaluate
    ),
    Subcommand(
        "simulate", "learning curves of selection strategies", add_simulate_arguments, run_simulate
    ),
    Subcommand(
        "corpus", "a synthetic demo-language corpus (espeak-ng)", add_corpus_arguments, run_corpus
    ),
    Subcommand("pretrain", "wav2vec 2.0 on unlabeled audio", add_pretrain_arguments, run_pretrain),
    Subcommand(
        "export",
        "ONNX files and a runner that need no Vernacular",
        add_export_arguments,
        run_export,
    ),
    Subcommand("align", "untimed transcript + recording -> clips", add_align_arguments, run_align),
]


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default adds the whole usage
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m asr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for subcommand in SUBCOMMANDS:
        subparser = commands.add_parser(subcommand.name, help=subcommand.help)
        subcommand.add_arguments(subparser)
        subparser.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)  # for child processes
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"asr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.traceback:
            raise
        known = (CliError, AudioError, ManifestError, OSError, ValueError)
        kind = "" if isinstance(error, known) else f"{type(error).__name__}: "
        message = " ".join(str(error).split())  # transformers' messages span lines
        if len(message) > 300:
            message = message[:297] + "..."
        print(f"asr {args.command}: error: {kind}{message}", file=sys.stderr)
        return 2
